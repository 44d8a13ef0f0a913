// Package address implements DSEP identities and the ways they are named:
// OpenPGP v4 keys (an Ed25519 certify-only primary, an Ed25519 signing
// subkey and a Cv25519 encryption subkey), fingerprints and the key address
// form <z-base-32 fingerprint>@dsep.alt, canonical email addresses, the
// domain anchor record _dsep.<domain> TXT "v=DSEP1; fpr=…", the domain's
// certification of a user's User ID, the verdict of a binding check, key
// revocation and rotation, the address-book rules for following a rotated
// contact, and delegations from an identity to libp2p peers.
//
// The package is pure: it parses, builds and verifies given its inputs and
// does no I/O. DNS lookups live in address/dns and the pinned contacts in
// address/book. The formats are specified in docs/protocol.md.
package address
