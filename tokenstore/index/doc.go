// Package index defines the lookup index that the secrets-manager stores
// keep beside their per-token documents: its keys, how keys are spread
// over bucket documents as the index grows, and its JSON format. It is a
// pure data structure: it reads and writes nothing.
//
// # What the index holds
//
// Only stable lookup keys: for every token its ID ("i"), and where set its
// user name ("u"), the SHA-256 digest of its grant token ("g") and of its
// refresh token ("r"), each scoped by the token's client ID ("c"). A
// record that has nothing but an access token (no user name, grant or
// refresh token: the Zoho SDK's rule-2 records, which are never refreshed)
// also has the digest of its access token ("a"), so a query by access
// token finds it without a scan; a query by the access token of any other
// record scans. Digests are SHA-256 in unpadded base64url (43
// characters); no raw token value is ever stored in the index. A refresh
// that changes only the access token and expiry of a refreshable record
// never rewrites the index; rotating its refresh token does (the "r" key
// changes).
//
// # Claims
//
// Every entry records the generation of the token document that it was
// claimed for ("n"): a save that adds key k to a document at generation
// g claims k with n = g+1 before it writes generation g+1. So an entry
// whose document is at generation n or later and does not hold the key
// is dead: no write that could still land needs it, because any such
// write would have to claim the key again with a larger n. An entry with
// n above the document's generation belongs to a save in progress (or one
// that crashed); see package casstore for how such claims are fenced.
// Entries written by version 1 of the format have n = 0.
//
// # Buckets: an index that grows by itself
//
// The entries live in bucket documents. A key has a 64-bit hash (Hash):
// the first 8 bytes of SHA-256("<kind>:<value>") as a big-endian integer;
// an ID key hashes as the ID says (HashID), so that a token's ID entry
// shares the bucket of its primary key. With m buckets (numbered 0 to
// m-1) the index is a linear hash table: with L = floor(log2 m), the key
// lives in bucket h mod 2^(L+1), or h mod 2^L when that is m or more
// (LinearBucket). Bucket b covers the hashes whose low Depth bits equal b.
// Growing from m to m+1 buckets splits one bucket, m - 2^L, whose keys
// with bit L set move to the new bucket m. Every bucket document records
// its own depth and the bucket count its writer knew ("buckets"), so a
// reader whose idea of m is stale finds out from the first bucket it
// reads and re-routes (see Bucket.Covers); m itself is never stored in one
// place that every writer would have to update.
//
// Stores made by the first version of this package kept a fixed number of
// shards (format 1, "shards": n); FixedRoute routes in such a layout.
// With n = 1 it is the same as one linear bucket.
//
// # Bucket document (format 2)
//
//	{"format":2,"bucket":5,"depth":3,"buckets":12,"gen":41,
//	 "w0":1767225600,"w":[0,8,8,61],
//	 "tokens":[
//	  {"id":"<token id>","c":"<client id>","n":3,"i":1,"u":"<user name>","g":"<digest>","r":"<digest>"}
//	]}
//
// "gen" counts the writes of the bucket; "w0" and "w" are the times of its
// recent writes (epoch seconds: w0 plus each offset), which the store uses
// to keep every bucket under its backend's write quota. A record groups
// the keys of one token, one client and one claim generation: "i":1 says
// the bucket lists the token (Tokens reads these), the other fields are
// present for the keys routed to this bucket. A token may briefly have two
// records while a key is being replaced.
//
// # Capacity
//
// A token with a 20-byte user name, a 35-byte client ID, a grant and a
// refresh token takes about 230 bytes when all its keys share a bucket and
// about 400 in all when they are spread: one 64 KiB document could hold
// about 300 such tokens. A store splits a bucket when it passes SplitSize
// (16 KiB) or its write-rate threshold, so no option is needed; Encode
// fails with ErrBucketFull rather than write a document over the limit.
package index
