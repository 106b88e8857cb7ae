#!/usr/bin/env bash
# Tag the released cloudtokens modules together. RELEASING.md has the whole
# procedure; this script does its mechanical part:
#
#   scripts/release.sh check VERSION    the checks alone (exit 1 on any problem)
#   scripts/release.sh VERSION          dry run: the checks, then the tags it would create
#   scripts/release.sh --tag VERSION    the checks, then create the annotated tags at HEAD
#                                       (locally; it prints the git push command)
#   scripts/release.sh bump VERSION     set every sibling require in the work tree's go.mod
#                                       files to VERSION (then review, commit, release)
#   scripts/release.sh modules          every module: directory, path, released or not
#
# Which modules are released: every directory of the git tree that holds a
# go.mod, except those under examples/ (copied, not imported) and
# integration/ (tests and build-only tools), and testdata/vendor directories.
# A new module (cmd/cloudtokens, otel/, ...) is released from its first
# commit on, with no list to edit. Tags: VERSION for the root module,
# DIR/VERSION for the others (awssm/v0.1.0), as the go command expects.
#
# The checks, on HEAD:
#   - the work tree is clean (no modified, staged or untracked files);
#   - every go.mod: the module path is the repository's plus its directory;
#     each require of a sibling module names VERSION, the sibling is
#     released, and a replace points at the sibling's directory
#     (integration/tools/release, `release check`);
#   - VERSION is vMAJOR.MINOR.PATCH[-PRERELEASE] with major v0 or v1;
#   - a LICENSE at the root (the go command copies it into every module zip);
#   - go.mod and go.sum are tidy in every module (go mod tidy -diff), except
#     the build-only integration/tools/* modules;
#   - none of the tags exists yet in this clone.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

die() {
	echo "release.sh: $*" >&2
	exit 1
}

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
	exit 2
}

# release_tool ARGS...: the Go side of the checks, reading HEAD.
release_tool() {
	go -C "$root/integration/tools/release" run . -root "$root" "$@"
}

# check VERSION: every check; prints the tags of VERSION on stdout.
check() {
	local version=$1 status tags dir t problems=0
	status=$(git status --porcelain --untracked-files=normal)
	if [[ -n "$status" ]]; then
		echo "release.sh: the work tree is not clean (a tag names HEAD, not these changes):" >&2
		echo "$status" | sed 's/^/  /' >&2
		problems=1
	fi
	if ! tags=$(release_tool check "$version"); then
		problems=1
	fi
	while IFS=$'\t' read -r dir _ _; do
		[[ "$dir" == integration/tools/* ]] && continue
		if ! out=$(cd "$dir" && go mod tidy -diff 2>&1); then
			echo "release.sh: $dir: go.mod/go.sum are not tidy (run go mod tidy there):" >&2
			echo "$out" | sed 's/^/  /' >&2
			problems=1
		fi
	done < <(release_tool modules)
	for t in $tags; do
		if git rev-parse -q --verify "refs/tags/$t" >/dev/null; then
			echo "release.sh: tag $t exists already (a published version never changes: pick the next version)" >&2
			problems=1
		fi
	done
	if ((problems)); then
		return 1
	fi
	echo "$tags"
}

tag=false
case "${1:-}" in
check)
	(($# == 2)) || usage
	tags=$(check "$2") || die "FAIL: $2 cannot be released from $(git rev-parse --short HEAD)"
	echo "release.sh: ok: $2 can be tagged at $(git rev-parse --short HEAD):" $tags
	exit 0
	;;
bump)
	(($# == 2)) || usage
	release_tool bump "$2"
	exit 0
	;;
modules)
	(($# == 1)) || usage
	release_tool modules
	exit 0
	;;
--tag)
	(($# == 2)) || usage
	tag=true
	shift
	;;
v*)
	(($# == 1)) || usage
	;;
*)
	usage
	;;
esac

version=$1
head=$(git rev-parse HEAD)
tags=$(check "$version") || die "FAIL: $version cannot be released from ${head:0:12}"
if ! $tag; then
	echo "release.sh: dry run: the checks pass; with --tag this creates, at HEAD ${head:0:12} ($(git log -1 --format=%s HEAD)):"
	for t in $tags; do
		echo "  git tag -a $t -m 'cloudtokens $t'"
	done
	echo "release.sh: then: git push origin" $tags
	exit 0
fi
for t in $tags; do
	git tag -a "$t" -m "cloudtokens $t" "$head"
	echo "release.sh: tagged $t at ${head:0:12}"
done
echo "release.sh: tags are local; publish them with:"
echo "  git push origin" $tags
