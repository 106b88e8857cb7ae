//go:build enginebugs

package staleness_test

import (
	"context"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore/casstoretest"
)

func TestExploreRepairLostResponse(t *testing.T) {
	ctx := context.Background()
	opts := casstore.Options{ClaimWait: 10 * time.Millisecond}
	crashedInsert := func() *casstore.MemoryBackend {
		for n := 1; n < 20; n++ {
			mem := casstore.NewMemoryBackend()
			seed := casstore.New(mem, opts)
			if err := seed.SaveToken(ctx, &tokenstore.Token{UserName: "seed", AccessToken: "a"}); err != nil {
				t.Fatal(err)
			}
			fb := casstoretest.NewFaultBackend(mem).At(n, casstoretest.Crash)
			s := casstore.New(fb, opts)
			_ = s.SaveToken(ctx, &tokenstore.Token{UserName: "u", ClientID: "c", ClientSecret: "s", RefreshToken: "r", AccessToken: "a"})
			rep, err := casstore.New(mem, opts).Check(ctx)
			if err == nil && len(rep.Missing) == 1 && len(rep.PendingClaims) == 2 {
				return mem
			}
		}
		t.Fatal("no crash point left a missing document with two pending claims")
		return nil
	}
	for k := 1; k < 30; k++ {
		for _, f := range []casstoretest.Fault{casstoretest.LoseResponse, casstoretest.FailBefore, casstoretest.Delay} {
			mem := crashedInsert()
			fb := casstoretest.NewFaultBackend(mem).At(k, f)
			rr, err := casstore.New(fb, opts).Repair(ctx)
			fb.ApplyDelayed()
			rep, cerr := casstore.New(mem, opts).Check(ctx)
			if err == nil && (cerr != nil || !rep.OK() || len(rr.Skipped) > 0) {
				t.Errorf("%s at Repair call %d: Repair says %s; Check: %v %v", f, k, rr, rep, cerr)
			}
		}
	}
}
