package main

import (
	"strconv"

	"github.com/cloudtokens/cloudtokens/integration/bench"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// GCPCost is what Secret Manager bills for one token after refreshes: its
// versions that are ENABLED or DISABLED (destroyed versions are free).
type GCPCost struct {
	Refreshes      int
	VersionsAdded  int // the current version's number: versions ever added
	Billable       int // ENABLED + DISABLED versions of the token's secret
	IndexBillable  int // the same for the index secret
	CallsPerUpdate float64
	Err            string
}

// gcpCost saves a new token, refreshes it n times and counts the billable
// versions of its secret (ListSecretVersions filtered on the state).
func (r *runner) gcpCost(n int) *GCPCost {
	res := &GCPCost{Refreshes: n}
	t := bench.NewToken(r.next)
	r.next++
	if err := r.warm.SaveToken(r.ctx, t); err != nil {
		res.Err = err.Error()
		return res
	}
	r.toks = append(r.toks, t)
	k := len(r.toks) - 1
	before := r.t.Calls.Snapshot()
	for range n {
		u := bench.Refreshed(r.toks[k])
		if err := r.warm.SaveToken(r.ctx, u); err != nil {
			res.Err = err.Error()
			return res
		}
		r.toks[k] = u
	}
	res.CallsPerUpdate = float64(r.t.Calls.Snapshot().Sub(before).Total()) / float64(n)
	name := casstore.TokenName(r.toks[k].ID)
	d, err := r.t.Raw.Read(r.ctx, r.prefix, name)
	if err != nil {
		res.Err = err.Error()
		return res
	}
	res.VersionsAdded, _ = strconv.Atoi(d.Version)
	if res.Billable, err = r.t.BillableVersions(r.ctx, r.prefix, name); err != nil {
		res.Err = err.Error()
		return res
	}
	if res.IndexBillable, err = r.t.BillableVersions(r.ctx, r.prefix, casstore.IndexName(0)); err != nil {
		res.Err = err.Error()
	}
	if err := r.warm.DeleteToken(r.ctx, r.toks[k].ID); err != nil && res.Err == "" {
		res.Err = err.Error()
	}
	r.toks = r.toks[:k]
	return res
}
