package address

import openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"

// ArmorPublic wraps binary public key data (one key or several) in ASCII
// armor ("PGP PUBLIC KEY BLOCK").
func ArmorPublic(data []byte) []byte { return armorBytes(openpgp.PublicKeyType, data) }
