// Build-only module: the release mechanics of the cloudtokens modules
// (scripts/release.sh, scripts/consume-check.sh; see RELEASING.md). Not
// imported by any other module and never released itself.
module github.com/cloudtokens/cloudtokens/integration/tools/release

go 1.26.0

require golang.org/x/mod v0.42.0
