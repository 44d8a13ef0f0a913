package record

import librecord "github.com/libp2p/go-libp2p-record"

// NamespacedValidator returns v registered under each of the four DSEP
// namespaces: what a DSEP DHT node is configured with, so that every other
// namespace (kad-dht's default /pk and /ipns included) is refused.
func NamespacedValidator(v Validator) librecord.NamespacedValidator {
	nv := make(librecord.NamespacedValidator, len(Namespaces()))
	for _, ns := range Namespaces() {
		nv[ns] = v
	}
	return nv
}
