package main

import (
	"io"

	"tern/common/binarymime"
)

// appendReader gives the message APPEND stores: r with its binary parts
// re-encoded (RFC 3516 4.3: a server that cannot keep binary content as
// such converts it; binarymime.Encode). The caller calls stop once it has
// finished reading, whatever happened.
func appendReader(r io.Reader) (out io.Reader, stop func()) {
	return binarymime.Reader(r)
}
