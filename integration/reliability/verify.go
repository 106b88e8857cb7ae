package reliability

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// state is what a store holds for one user: absent, or a token with an
// access and a refresh token ("" for none).
type state struct {
	Present bool
	Access  string
	Refresh string
}

func (s state) String() string {
	if !s.Present {
		return "absent"
	}
	if s.Refresh == "" {
		return fmt.Sprintf("{%s}", s.Access)
	}
	return fmt.Sprintf("{%s %s}", s.Access, s.Refresh)
}

func stateOf(t *tokenstore.Token) state {
	return state{Present: true, Access: t.AccessToken, Refresh: t.RefreshToken}
}

// observed is a store's view of every user: what FindToken by user name
// returns, and what Tokens lists.
type observed struct {
	find   map[int]state
	ids    map[int]string // the ID FindToken returned
	listed map[int][]*tokenstore.Token
}

// observe reads every user of 0..users-1 by user name, and the Tokens
// listing, and reports what contradicts itself: two listed records for a
// user, a listed token that is not found (or found under another ID), a
// found token that is not listed, a token not found by its refresh token.
// Errors of the reads are violations too: a store must answer them.
func observe(ctx context.Context, st Store, users int, f *findings, stage string) *observed {
	o := &observed{find: map[int]state{}, ids: map[int]string{}, listed: map[int][]*tokenstore.Token{}}
	toks, err := st.Tokens(ctx)
	if err != nil {
		f.add(vUnfindable, "%s: Tokens: %v", stage, err)
	}
	for _, tok := range toks {
		u, ok := userOf(tok.UserName)
		if !ok || u >= users {
			f.add(vWrongValue, "%s: Tokens lists token %s of user %q, which is none of the test's", stage, tok.ID, tok.UserName)
			continue
		}
		o.listed[u] = append(o.listed[u], tok)
	}
	for u := range users {
		got, err := st.FindToken(ctx, &tokenstore.Token{UserName: userName(u)})
		switch {
		case errors.Is(err, tokenstore.ErrNotFound):
			o.find[u] = state{}
		case err != nil:
			f.add(vUnfindable, "%s: user %d: FindToken: %v", stage, u, err)
			continue
		case got.UserName != userName(u):
			f.add(vWrongValue, "%s: user %d: FindToken returned token %s of user %q", stage, u, got.ID, got.UserName)
			continue
		default:
			o.find[u] = stateOf(got)
			o.ids[u] = got.ID
		}
		listed := o.listed[u]
		switch {
		case len(listed) > 1:
			ids := make([]string, len(listed))
			for i, t := range listed {
				ids[i] = t.ID
			}
			slices.Sort(ids)
			f.add(vDuplicate, "%s: user %d: Tokens lists %d records %v", stage, u, len(listed), ids)
		case len(listed) == 1 && !o.find[u].Present:
			f.add(vUnfindable, "%s: user %d: Tokens lists token %s, FindToken by user name finds nothing", stage, u, listed[0].ID)
		case len(listed) == 1 && listed[0].ID != o.ids[u]:
			f.add(vUnfindable, "%s: user %d: Tokens lists token %s, FindToken finds %s", stage, u, listed[0].ID, o.ids[u])
		case len(listed) == 0 && o.find[u].Present:
			f.add(vUnlisted, "%s: user %d: FindToken finds token %s, Tokens does not list it", stage, u, o.ids[u])
		}
		if s := o.find[u]; s.Present && s.Refresh != "" {
			byRefresh, err := st.FindToken(ctx, &tokenstore.Token{ClientID: clientID, ClientSecret: clientSecret, RefreshToken: s.Refresh})
			switch {
			case err != nil:
				f.add(vRefreshLookup, "%s: user %d: token %s: FindToken by its refresh token: %v", stage, u, o.ids[u], err)
			case byRefresh.ID != o.ids[u]:
				f.add(vRefreshLookup, "%s: user %d: token %s, but its refresh token finds %s", stage, u, o.ids[u], byRefresh.ID)
			}
		}
	}
	return o
}

// repairOutcome is what repairAndCheck saw.
type repairOutcome struct {
	Before *casstore.Report      // Check before Repair (nil if it failed)
	Report casstore.RepairReport // what Repair changed
	After  *casstore.Report      // Check after Repair (nil if it failed)
	Took   time.Duration         // the first Repair's wall time
}

// repairAndCheck runs Check, Repair, Check and Repair again on a store
// nobody else uses, and records a violation unless: Repair succeeds;
// Check is clean after it; Repair changed something exactly when the
// first Check reported a problem (Check reports every state Repair
// fixes, and Repair fixes every state Check reports); and the second
// Repair changes nothing (it is idempotent).
func repairAndCheck(ctx context.Context, st Store, f *findings, stage string) repairOutcome {
	var out repairOutcome
	before, err := st.Check(ctx)
	if err != nil {
		f.add(vCheckUnclean, "%s: Check before Repair: %v", stage, err)
	}
	out.Before = before
	start := time.Now()
	rr, err := st.Repair(ctx)
	out.Took, out.Report = time.Since(start), rr
	if err != nil {
		f.add(vRepairFailed, "%s: Repair: %v", stage, err)
	}
	after, cerr := st.Check(ctx)
	out.After = after
	switch {
	case cerr != nil:
		f.add(vCheckUnclean, "%s: Check after Repair: %v", stage, cerr)
	case !after.OK():
		f.add(vCheckUnclean, "%s: after Repair (%s): %s", stage, rr, checkSummary(after))
	}
	if err == nil && before != nil && before.OK() == rr.Changed() {
		f.add(vRepairDisagrees, "%s: Check before Repair: %s; Repair: %s", stage, checkSummary(before), rr)
	}
	if err == nil && len(rr.Skipped) > 0 {
		f.add(vRepairFailed, "%s: Repair skipped %v on a store nobody else used", stage, rr.Skipped)
	}
	if rr2, err := st.Repair(ctx); err != nil {
		f.add(vRepairFailed, "%s: second Repair: %v", stage, err)
	} else if rr2.Changed() {
		f.add(vRepairRepeated, "%s: first Repair: %s; second: %s", stage, rr, rr2)
	}
	return out
}

// saveEveryUser saves a new access token for every user, each within
// limit, and finds it back: a user whose save fails or does not come
// back is locked out (or lost its save).
func saveEveryUser(ctx context.Context, st Store, users int, tag string, limit time.Duration, f *findings, stage string) map[int]state {
	want := map[int]state{}
	for u := range users {
		tok := &tokenstore.Token{UserName: userName(u), ClientID: clientID, ClientSecret: clientSecret, AccessToken: fmt.Sprintf("%s-u%d", tag, u)}
		start := time.Now()
		err := withTimeout(ctx, limit, func(ctx context.Context) error { return st.SaveToken(ctx, tok) })
		if err != nil {
			f.add(vLockedOut, "%s: user %d: SaveToken failed after %v: %v", stage, u, time.Since(start).Round(time.Millisecond), err)
			continue
		}
		got, err := st.FindToken(ctx, &tokenstore.Token{UserName: userName(u)})
		if err != nil || got.AccessToken != tok.AccessToken {
			f.add(vLostSave, "%s: user %d: saved, then FindToken = %v, %v", stage, u, stateOrNil(got), err)
			continue
		}
		want[u] = stateOf(got)
	}
	return want
}

func stateOrNil(t *tokenstore.Token) string {
	if t == nil {
		return "nothing"
	}
	return stateOf(t).String()
}
