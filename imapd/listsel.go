package main

import (
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// listQuery is one LIST or LSUB command as the server layer parsed it.
// LSUB (RFC 3501 6.3.9) is told apart from LIST (SUBSCRIBED) (RFC 5258
// 3.1) by lsub: the two select the same names but mark them differently.
type listQuery struct {
	ref      string
	patterns []string
	options  *imap.ListOptions
	lsub     bool
}

// listMailboxes answers LIST and LSUB: it calls write with each mailbox
// to report, in order. The layer encodes each ListData as a LIST or LSUB
// response (with its CHILDINFO extended data, RFC 5258 4) and, for RETURN
// (STATUS), the STATUS response after it.
//
//   - LIST: the existing mailboxes matching a pattern, with \HasChildren or
//     \HasNoChildren, special-use, and \Subscribed when RETURN (SUBSCRIBED)
//     asks.
//   - LIST (SUBSCRIBED): the subscribed names matching, existing or not;
//     one that no longer exists is \NonExistent \Subscribed (RFC 5258 3.1:
//     a subscription outlives its mailbox). With RECURSIVEMATCH, a
//     matching name that is not subscribed itself but has a subscribed
//     descendant no pattern matches is reported with CHILDINFO
//     ("SUBSCRIBED") (RFC 5258 3.5), as Dovecot does.
//   - LSUB: the subscribed names matching; a name that does not exist any
//     more, or that is only the parent of a subscribed name the pattern
//     does not reach ("%"), is \Noselect (RFC 3501 6.3.9).
func (s *session) listMailboxes(q listQuery, write func(*imap.ListData) error) error {
	options := q.options
	// RFC 3501 6.3.8: an empty pattern asks for the hierarchy delimiter
	// and the root name.
	if len(q.patterns) == 0 {
		return write(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: delim})
	}
	folders, err := s.mbox.List()
	if err != nil {
		return storeError(s.log, "list", err)
	}
	subs, err := s.mbox.Subscriptions()
	if err != nil {
		return storeError(s.log, "list", err)
	}
	subscribed := make(map[string]bool, len(subs))
	for _, name := range subs {
		subscribed[name] = true
	}
	match := func(name string) bool {
		for _, p := range q.patterns {
			if matchList(name, delim, q.ref, p) {
				return true
			}
		}
		return false
	}
	// hiddenSub reports whether name has a subscribed descendant that no
	// pattern matches: then name stands for it (LSUB's \Noselect parent,
	// LIST's CHILDINFO).
	hiddenSub := func(name string) bool {
		prefix := name + string(delim)
		for _, sub := range subs {
			if strings.HasPrefix(sub, prefix) && !match(sub) {
				return true
			}
		}
		return false
	}
	byName := make(map[string]int, len(folders))
	for i, f := range folders {
		byName[f.Name] = i
	}

	if !options.SelectSubscribed {
		for _, f := range folders {
			if !match(f.Name) || (options.SelectSpecialUse && f.SpecialUse == "") {
				continue
			}
			data := s.listData(f.Name, f.HasChildren, f.SpecialUse, options)
			if options.ReturnSubscribed && subscribed[f.Name] {
				data.Attrs = append(data.Attrs, imap.MailboxAttrSubscribed)
			}
			if err := write(data); err != nil {
				return err
			}
		}
		return nil
	}

	// The names a subscription selection can report: the existing folders
	// (in the store's order), then subscribed names that do not exist and
	// the parents of subscribed names, sorted.
	names := make([]string, 0, len(folders)+len(subs))
	for _, f := range folders {
		names = append(names, f.Name)
	}
	var extra []string
	seen := make(map[string]bool)
	for _, sub := range subs {
		for n := sub; ; {
			if _, ok := byName[n]; !ok && !seen[n] {
				seen[n] = true
				extra = append(extra, n)
			}
			i := strings.LastIndexByte(n, byte(delim))
			if i <= 0 {
				break
			}
			n = n[:i]
		}
	}
	slices.Sort(extra)
	names = append(names, extra...)

	for _, name := range names {
		if !match(name) {
			continue
		}
		i, exists := byName[name]
		var data *imap.ListData
		switch {
		case subscribed[name] && q.lsub:
			data = &imap.ListData{Mailbox: name, Delim: delim}
			if !exists {
				// LSUB has no \NonExistent (RFC 3501 6.3.9).
				data.Attrs = []imap.MailboxAttr{imap.MailboxAttrNoSelect}
			}
		case subscribed[name]:
			if exists {
				data = s.listData(name, folders[i].HasChildren, folders[i].SpecialUse, options)
			} else {
				data = &imap.ListData{Mailbox: name, Delim: delim, Attrs: []imap.MailboxAttr{imap.MailboxAttrNonExistent}}
			}
			data.Attrs = append(data.Attrs, imap.MailboxAttrSubscribed)
		case q.lsub && hiddenSub(name):
			data = &imap.ListData{Mailbox: name, Delim: delim, Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}}
		case options.SelectRecursiveMatch && hiddenSub(name):
			if exists {
				data = s.listData(name, folders[i].HasChildren, folders[i].SpecialUse, options)
			} else {
				data = &imap.ListData{Mailbox: name, Delim: delim, Attrs: []imap.MailboxAttr{imap.MailboxAttrNonExistent}}
			}
			data.ChildInfo = &imap.ListDataChildInfo{Subscribed: true}
		default:
			continue
		}
		if options.SelectSpecialUse && (!exists || folders[i].SpecialUse == "") {
			continue
		}
		if err := write(data); err != nil {
			return err
		}
	}
	return nil
}

// listData is the LIST answer of an existing mailbox: children (RFC 3348,
// RFC 5258 4: always given, clients draw their folder tree with them),
// special use (RFC 6154 2: on every LIST, clients rely on it), and STATUS
// when RETURN (STATUS) asks (RFC 5819).
func (s *session) listData(name string, hasChildren bool, specialUse string, options *imap.ListOptions) *imap.ListData {
	data := &imap.ListData{Mailbox: name, Delim: delim}
	if hasChildren {
		data.Attrs = append(data.Attrs, imap.MailboxAttrHasChildren)
	} else {
		data.Attrs = append(data.Attrs, imap.MailboxAttrHasNoChildren)
	}
	if specialUse != "" {
		data.Attrs = append(data.Attrs, imap.MailboxAttr(specialUse))
	}
	if options.ReturnStatus != nil {
		if st, err := s.Status(name, options.ReturnStatus); err == nil {
			data.Status = st
		}
	}
	return data
}
