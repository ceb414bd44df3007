package main

import (
	"strings"
	"testing"
)

// listLines runs a LIST or LSUB and returns its untagged lines, trimmed.
func listLines(c *rawIMAP, command string) []string {
	c.t.Helper()
	var out []string
	for _, l := range c.cmd("%s", command) {
		// RFC 5258 6: the extended item's tag is an astring; compare
		// it in one form.
		line := strings.Replace(strings.TrimRight(string(l), "\r\n"), `("CHILDINFO" `, `(CHILDINFO `, 1)
		out = append(out, line)
	}
	return out
}

func wantLines(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

// LIST-EXTENDED (RFC 5258) and LSUB (RFC 3501 6.3.9) over subscriptions:
// a subscription outlives its mailbox (\NonExistent), RECURSIVEMATCH
// reports the parents of subscribed names the pattern does not reach
// (CHILDINFO), and LSUB marks such parents \Noselect. The default folders
// come subscribed.
func TestListSubscribedExtended(t *testing.T) {
	e := startServer(t)
	c := dialRawIMAP(t, e.addr)
	c.cmd("LOGIN demo demo")
	wantLines(t, "LSUB of a new user", listLines(c, `LSUB "" *`),
		`* LSUB () "." "Archive"`, `* LSUB () "." "Drafts"`, `* LSUB () "." "Junk"`,
		`* LSUB () "." "Sent"`, `* LSUB () "." "Trash"`)
	c.cmd("UNSUBSCRIBE Junk")
	for _, name := range []string{"t.a", "t.b.c", "t.d", "t.e.e", "t.f.f", "t.f.g"} {
		c.cmd("CREATE %s", name)
		c.cmd("SUBSCRIBE %s", name)
	}
	c.cmd("DELETE t.d")

	wantLines(t, "LIST (SUBSCRIBED)", listLines(c, `LIST (SUBSCRIBED) "" t.*`),
		`* LIST (\HasNoChildren \Subscribed) "." "t.a"`,
		`* LIST (\HasNoChildren \Subscribed) "." "t.b.c"`,
		`* LIST (\HasNoChildren \Subscribed) "." "t.e.e"`,
		`* LIST (\HasNoChildren \Subscribed) "." "t.f.f"`,
		`* LIST (\HasNoChildren \Subscribed) "." "t.f.g"`,
		`* LIST (\NonExistent \Subscribed) "." "t.d"`)
	wantLines(t, "RECURSIVEMATCH with %", listLines(c, `LIST (SUBSCRIBED RECURSIVEMATCH) "" t.% RETURN (CHILDREN)`),
		`* LIST (\HasNoChildren \Subscribed) "." "t.a"`,
		`* LIST (\HasChildren) "." "t.b" (CHILDINFO ("SUBSCRIBED"))`,
		`* LIST (\HasChildren) "." "t.e" (CHILDINFO ("SUBSCRIBED"))`,
		`* LIST (\HasChildren) "." "t.f" (CHILDINFO ("SUBSCRIBED"))`,
		`* LIST (\NonExistent \Subscribed) "." "t.d"`)
	// A parent whose subscribed children all match is not repeated; one
	// with a child the pattern misses is.
	wantLines(t, "RECURSIVEMATCH with *", listLines(c, `LIST (SUBSCRIBED RECURSIVEMATCH) "" t*f`),
		`* LIST (\HasChildren) "." "t.f" (CHILDINFO ("SUBSCRIBED"))`,
		`* LIST (\HasNoChildren \Subscribed) "." "t.f.f"`)
	wantLines(t, "LSUB %", listLines(c, `LSUB "" t.%`),
		`* LSUB () "." "t.a"`,
		`* LSUB (\Noselect) "." "t.b"`,
		`* LSUB (\Noselect) "." "t.e"`,
		`* LSUB (\Noselect) "." "t.f"`,
		`* LSUB (\Noselect) "." "t.d"`)
	wantLines(t, "LSUB *", listLines(c, `LSUB "" *.e`),
		`* LSUB () "." "t.e.e"`)
	wantLines(t, "LIST RETURN (SUBSCRIBED)", listLines(c, `LIST "" t.% RETURN (SUBSCRIBED)`),
		`* LIST (\HasNoChildren \Subscribed) "." "t.a"`,
		`* LIST (\HasChildren) "." "t.b"`,
		`* LIST (\HasChildren) "." "t.e"`,
		`* LIST (\HasChildren) "." "t.f"`)
	// The unsubscribe of a default folder survives the next login.
	c2 := dialRawIMAP(t, e.addr)
	c2.cmd("LOGIN demo demo")
	wantLines(t, "LSUB after unsubscribing Junk", listLines(c2, `LSUB "" %`),
		`* LSUB () "." "Archive"`, `* LSUB () "." "Drafts"`,
		`* LSUB () "." "Sent"`, `* LSUB () "." "Trash"`, `* LSUB (\Noselect) "." "t"`)
}
