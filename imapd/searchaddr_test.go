package main

import (
	"fmt"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// SEARCH FROM / TO / CC finds an address however the header wrote it:
// with comments inside the angle brackets, a trailing comment as the name,
// inside a group (RFC 5322 3.2.2, 3.4; RFC 3501 6.4.4).
func TestSearchAddressesWithComments(t *testing.T) {
	e := startServer(t)
	for _, h := range []string{
		"From: user-from@domain.org\r\nTo: user-to@domain.org\r\n",
		"From: RealFrom <user-from@domain.org>\r\nCc: RealCc <user-cc@domain.org>\r\n",
		"From: <user-from (comment)@ (comment) domain.org>\r\nTo: <user-to@domain.org>\r\n",
		"From: user-from@domain.org (RealFrom)\r\nCc: user-cc@domain.org (RealCc)\r\n",
		"From: user-from1@domain.org, user-from2@domain.org\r\n",
		"From: RealFrom <user-from@domain.org>\r\nTo: groupname: groupuser1@domain.org, groupuser2@domain.org;,\r\n  groupname2: groupuser3@domain.org;\r\n",
		"From: other@domain.org\r\nTo: groupname:;\r\n",
	} {
		e.deliver(t, "INBOX", h+"\r\nbody\r\n")
	}
	c := e.login(t, nil)
	selectInbox(t, c)
	for _, tc := range []struct {
		key, value string
		want       []uint32
	}{
		{"From", "user-from@domain.org", []uint32{1, 2, 3, 4, 6}},
		{"From", "realfrom", []uint32{2, 4, 6}},
		{"From", "ser-fro", []uint32{1, 2, 3, 4, 5, 6}},
		{"Cc", "realcc", []uint32{2, 4}},
		{"Cc", "user-cc@domain.org", []uint32{2, 4}},
		{"To", "user-to@domain.org", []uint32{1, 3}},
		{"To", "groupname", []uint32{6, 7}},
		{"To", "groupuser3", []uint32{6}},
		{"To", "groupuser4", nil},
	} {
		d, err := c.Search(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: tc.key, Value: tc.value}}}, nil).Wait()
		if err != nil {
			t.Fatal(err)
		}
		if got := d.AllSeqNums(); fmt.Sprint(got) != fmt.Sprint(tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
			t.Errorf("SEARCH %s %q = %v, want %v", tc.key, tc.value, got, tc.want)
		}
	}
}
