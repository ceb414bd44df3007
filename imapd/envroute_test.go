package main

import (
	"bufio"
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-message/textproto"
)

// The source route of an address (RFC 5322 4.4 obs-route) is kept for
// ENVELOPE's adl field (RFC 3501 7.4.2), one per address, in the order of
// the address list envelope gives.
func TestEnvelopeRoutes(t *testing.T) {
	h, err := textproto.ReadHeader(bufio.NewReader(strings.NewReader(
		"From: <@route:user@domain>\r\n" +
			"To: a@b.c, Name <@r1, @r2 :x@y.z>, grp: <@g:m@n.o>;\r\n" +
			"Cc: plain@example.test\r\n\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	env := envelope(h)
	routes := envelopeRoutes(h)
	if len(env.From) != 1 || env.From[0].Mailbox != "user" || env.From[0].Host != "domain" {
		t.Fatalf("From %+v", env.From)
	}
	if got := fmt.Sprint(routes[0]); got != "[@route]" {
		t.Errorf("From routes %s", got)
	}
	if len(routes[3]) != len(env.To) {
		t.Fatalf("To: %d routes for %d addresses", len(routes[3]), len(env.To))
	}
	if got := fmt.Sprintf("%q", routes[3]); got != `["" "@r1,@r2" "" "@g" ""]` {
		t.Errorf("To routes %s", got)
	}
	if env.To[1].Name != "Name" || env.To[1].Mailbox != "x" || env.To[1].Host != "y.z" {
		t.Errorf("To[1] %+v", env.To[1])
	}
	if routes[4] != nil || routes[1] != nil {
		t.Errorf("routes without any route: %q %q", routes[4], routes[1])
	}
}
