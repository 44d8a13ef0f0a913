// Package record implements the DSEP DHT records of docs/protocol.md §9
// ("DHT records"): the signed envelope {type, version, seq, not_before,
// eol, body} shared by the four namespaces
//
//	/dsep-key/<fpr>     a public key, self-signed material only, signed by its primary
//	/dsep-rev/<fpr>     a key revocation, signed by the key's primary
//	/dsep-reach/<fpr>   delegates, stamp price, hidden flag, signed by the signing subkey
//	/dsep-email/<slot>  a domain's binding of an email to a key, signed by the domain primary
//
// their bodies, the builders that sign them (NewKey, NewRev, NewReach,
// NewEmail), Verify, which validates a value for a DHT key exactly as §9.2
// and §9.3 say and returns what it proved, and Validator, the
// go-libp2p-record validator and selector kad-dht runs on every value it
// stores or receives.
//
// The package is pure: every function is a function of its arguments
// (Verify takes the time as one), does no I/O and keeps no state. Every
// decoder bounds its input and never panics; errors wrap one of the
// package's sentinels (ErrMalformed, ErrBadSignature, …) so callers can
// tell why a record was refused.
//
// The test vectors of §9 are the files in testdata/ (see golden_test.go).
package record
