package main

import (
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

func listAttrs(t *testing.T, data []*imap.ListData) map[string][]imap.MailboxAttr {
	t.Helper()
	m := make(map[string][]imap.MailboxAttr)
	for _, d := range data {
		m[d.Mailbox] = d.Attrs
	}
	return m
}

func hasAttr(attrs []imap.MailboxAttr, a imap.MailboxAttr) bool {
	for _, x := range attrs {
		if x == a {
			return true
		}
	}
	return false
}

func TestListCreateDeleteRename(t *testing.T) {
	e := startServer(t)
	c := e.login(t, nil)

	if err := c.Create("Projects.2024", nil).Wait(); err != nil {
		t.Fatalf("create: %v", err)
	}
	wantIMAPError(t, c.Create("Projects.2024", nil).Wait(), imap.StatusResponseTypeNo, "create existing")
	wantIMAPError(t, c.Create("INBOX", nil).Wait(), imap.StatusResponseTypeNo, "create INBOX")
	wantIMAPError(t, c.Create("bad*name", nil).Wait(), imap.StatusResponseTypeNo, "create wildcard")

	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	attrs := listAttrs(t, list)
	if !hasAttr(attrs["Sent"], imap.MailboxAttrSent) || !hasAttr(attrs["Trash"], imap.MailboxAttrTrash) {
		t.Errorf("special-use missing: %v", attrs)
	}
	if !hasAttr(attrs["Projects"], imap.MailboxAttrHasChildren) || !hasAttr(attrs["Projects.2024"], imap.MailboxAttrHasNoChildren) {
		t.Errorf("children attributes: %v", attrs)
	}
	// "%" does not descend a level.
	top, err := c.List("", "%", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := listAttrs(t, top)["Projects.2024"]; ok {
		t.Errorf("%% matched a child: %v", listAttrs(t, top))
	}
	// LIST "" "" gives the delimiter.
	root, err := c.List("", "", nil).Collect()
	if err != nil || len(root) != 1 || root[0].Delim != '.' {
		t.Fatalf("delimiter: %+v %v", root, err)
	}
	// SPECIAL-USE selection.
	su, err := c.List("", "*", &imap.ListOptions{SelectSpecialUse: true}).Collect()
	if err != nil || len(su) != 5 {
		t.Fatalf("LIST (SPECIAL-USE): %d %v", len(su), err)
	}

	if err := c.Rename("Projects.2024", "Projects.2025", nil).Wait(); err != nil {
		t.Fatalf("rename: %v", err)
	}
	wantIMAPError(t, c.Rename("Nope", "Other", nil).Wait(), imap.StatusResponseTypeNo, "rename missing")
	if err := c.Delete("Projects.2025").Wait(); err != nil {
		t.Fatalf("delete: %v", err)
	}
	wantIMAPError(t, c.Delete("Projects.2025").Wait(), imap.StatusResponseTypeNo, "delete missing")
	wantIMAPError(t, c.Delete("INBOX").Wait(), imap.StatusResponseTypeNo, "delete INBOX")
	wantIMAPError(t, selectErr(c, "Nope"), imap.StatusResponseTypeNo, "select missing")
}

func selectErr(c *imapclient.Client, name string) error {
	_, err := c.Select(name, nil).Wait()
	return err
}

func TestRenameInbox(t *testing.T) {
	e := startServer(t)
	e.deliver(t, "INBOX", testMessage("keep", "x\r\n"))
	c := e.login(t, nil)
	if err := c.Rename("INBOX", "Old", nil).Wait(); err != nil {
		t.Fatalf("rename INBOX: %v", err)
	}
	st, err := c.Status("Old", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || *st.NumMessages != 1 {
		t.Fatalf("Old: %+v %v", st, err)
	}
	st, err = c.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || *st.NumMessages != 0 {
		t.Fatalf("INBOX after rename: %+v %v", st, err)
	}
}

func TestSubscribeLsub(t *testing.T) {
	e := startServer(t)
	c := e.login(t, nil)
	if err := c.Subscribe("Sent").Wait(); err != nil {
		t.Fatal(err)
	}
	subs, err := c.List("", "*", &imap.ListOptions{SelectSubscribed: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := listAttrs(t, subs)["Sent"]; !ok || !hasAttr(a, imap.MailboxAttrSubscribed) {
		t.Fatalf("subscribed list: %+v", subs)
	}
	if err := c.Unsubscribe("Sent").Wait(); err != nil {
		t.Fatal(err)
	}
	subs, err = c.List("", "*", &imap.ListOptions{SelectSubscribed: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := listAttrs(t, subs)["Sent"]; ok {
		t.Fatalf("still subscribed: %+v", subs)
	}
}

func TestStatus(t *testing.T) {
	e := startServer(t)
	msg := testMessage("s", "body\r\n")
	e.deliver(t, "INBOX", msg)
	e.deliver(t, "INBOX", msg)
	c := e.login(t, nil)
	st, err := c.Status("INBOX", &imap.StatusOptions{
		NumMessages: true, UIDNext: true, UIDValidity: true, NumUnseen: true, NumDeleted: true, Size: true,
	}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if *st.NumMessages != 2 || *st.NumUnseen != 2 || *st.NumDeleted != 0 || *st.Size != int64(2*len(msg)) ||
		st.UIDNext != 3 || st.UIDValidity == 0 {
		t.Fatalf("status %+v size %d", st, *st.Size)
	}
	_, err = c.Status("Nope", &imap.StatusOptions{NumMessages: true}).Wait()
	wantIMAPError(t, err, imap.StatusResponseTypeNo, "status missing")
}

func TestNamespaceEnableUnselect(t *testing.T) {
	e := startServer(t)
	c := e.login(t, nil)
	ns, err := c.Namespace().Wait()
	if err != nil || len(ns.Personal) != 1 || ns.Personal[0].Delim != '.' {
		t.Fatalf("namespace %+v %v", ns, err)
	}
	// Out of state: UNSELECT with nothing selected.
	wantIMAPError(t, c.Unselect().Wait(), imap.StatusResponseTypeBad, "unselect unselected")
	selectInbox(t, c)
	if err := c.Unselect().Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Enable(imap.CapIMAP4rev2).Wait(); err != nil {
		t.Fatal(err)
	}
}

// RFC 6154 5.1: CREATE with USE gives the attribute when the store's
// naming allows it, and otherwise creates nothing and says USEATTR.
func TestCreateSpecialUse(t *testing.T) {
	e := startServer(t)
	c := e.login(t, nil)
	if !c.Caps().Has(imap.CapCreateSpecialUse) {
		t.Fatal("CREATE-SPECIAL-USE not advertised")
	}
	if err := c.Delete("Junk").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Create("Junk", &imap.CreateOptions{SpecialUse: []imap.MailboxAttr{imap.MailboxAttrJunk}}).Wait(); err != nil {
		t.Fatalf("CREATE Junk (USE (\\Junk)): %v", err)
	}
	err := c.Create("Spam", &imap.CreateOptions{SpecialUse: []imap.MailboxAttr{imap.MailboxAttrJunk}}).Wait()
	if ie := wantIMAPError(t, err, imap.StatusResponseTypeNo, "CREATE Spam (USE (\\Junk))"); ie.Code != "USEATTR" {
		t.Fatalf("code %q, want USEATTR", ie.Code)
	}
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	attrs := listAttrs(t, list)
	if !hasAttr(attrs["Junk"], imap.MailboxAttrJunk) {
		t.Errorf("Junk attributes %v", attrs["Junk"])
	}
	if _, ok := attrs["Spam"]; ok {
		t.Error("a refused CREATE made the folder")
	}
}
