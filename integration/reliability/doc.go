// Package reliability runs the fault and crash tests of the cloudtokens
// stores against real servers: what a store must survive on a serverless
// platform, where networks lose answers after the server applied a write
// and instances are killed in the middle of a call.
//
// # Random faults (RunFaults)
//
// Two stores (as two processes) with 8 goroutines each save, find and
// delete 40 shared users for a few rounds, while every request of both
// goes through a fault injector (package faultinject: seeded, 15 % of the
// requests get a dropped connection, a lost response after the server
// applied the request, a 5xx, a throttling answer or a delay). Operations
// may fail; the store may not lie. With the faults off, on a clean store:
//
//   - every value any find returned was written for that user by someone;
//   - Tokens lists at most one token per user, with a value someone wrote;
//   - every user whose last save was acknowledged is found, with a value of
//     that last round of saves, and a deleted user whose delete was the last
//     acknowledged operation is not found;
//   - no user is locked out: a save of every user succeeds within a bounded
//     time;
//   - Check, Repair, Check, Repair: see "Check and Repair" below; then
//     exactly one token document per user.
//
// # SIGKILL (RunKills)
//
// Each round starts a child process (package proctest) on a fresh prefix,
// seeded with a few users, that loops inserts, updates (some rotating the
// refresh token, so lookup keys change), finds and deletes of a handful of
// users, and kills it with SIGKILL at a random moment. Before every call
// the child appends what it is about to do to a journal, and after it what
// happened, each record fsynced before it goes on (proctest.Journal), so
// the parent knows exactly which operations were acknowledged and which
// one was cut short. For every user it then knows the set of legal states
// (the effect of the last acknowledged operation, or of any unacknowledged
// one after it) and checks, on the state the kill left:
//
//   - every value a find returned was legal at that moment;
//   - every user is in a legal state: no acknowledged save lost, no deleted
//     user back, no value that was never written;
//   - Tokens lists each present user exactly once, every listed token is
//     found by user name and by refresh token, and every found one is listed;
//   - Check, Repair, Check, Repair (see below), and the state is still
//     legal after Repair;
//   - no user is locked out: the save the kill cut short, retried as a
//     restarted function would, and then a save of every user succeed
//     within a bounded time, and Check stays clean.
//
// Half of the rounds use one index shard, half four, so that kills also
// land between the writes of different shards.
//
// # Check and Repair
//
// On a store nobody else uses (the child is dead, the faults are off) the
// harness runs Check, Repair, Check and Repair again, and requires that
// Repair succeeds; that Check is clean after it; that Repair changed
// something exactly when the first Check reported a problem (Check reports
// every state that Repair fixes, and Repair fixes every state that Check
// reports); and that the second Repair changes nothing. What the kill or
// the faults left before Repair (pending claims, entries of a document a
// crashed insert never created) is counted in the summaries, not a
// violation: the next operation on the key or Repair completes it.
//
// Every assertion fails the test; there is no informational one.
//
// # Soak runs
//
// The defaults keep each backend under about three minutes in CI. The
// environment makes the runs longer and varied:
//
//	CLOUDTOKENS_SOAK=1            20x the kill rounds and 5x the fault rounds, random seeds
//	CLOUDTOKENS_KILL_ROUNDS=n     kill rounds per backend (default 20)
//	CLOUDTOKENS_FAULT_ROUNDS=n    save/find rounds of the fault test (default 3)
//	CLOUDTOKENS_FAULT_SEED=n      the fault injectors' seed (default 1; "random" picks one)
//
// Every run logs its seeds, so a failing soak run can be replayed. With
// -short the tests are skipped, except in CI (CI=true).
package reliability
