package main

import (
	"crypto/sha256"
	"encoding/base64"
)

// maxUIDLLength is the longest unique-id RFC 1939 7 allows.
const maxUIDLLength = 70

// uidlOf is the unique-id listing of a message whose Maildir key is key.
//
// The key, the unique part of the Maildir file name, already has the
// properties RFC 1939 7 asks of a unique-id: it stays the same when flags
// change (they live after the ":2," in the name, not in the key), across
// sessions and restarts, and no other message of the mailbox ever has it.
// Keys written by tern and by other Maildir tools are printable ASCII and
// usually short enough, and are then used as they are.
//
// A key that is not a valid unique-id (RFC 1939 7: 1 to 70 characters in
// the range 0x21 to 0x7E) is mapped to "/" and the unpadded base64url of its
// SHA-256. That is stable and, in practice, unique; and since "/" cannot
// occur in a file name, a mapped id never equals any key used as it is.
func uidlOf(key string) string {
	if validUIDL(key) {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "/" + base64.RawURLEncoding.EncodeToString(sum[:])
}

func validUIDL(s string) bool {
	if len(s) == 0 || len(s) > maxUIDLLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
