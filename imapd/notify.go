package main

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"

	"tern/common/listen"
	"tern/common/maildir"
	"tern/imapd/wire"
)

// NOTIFY (RFC 5465): the client names mailboxes and events, and the
// session tells it of them as they happen, between commands as well as
// during IDLE (RFC 5465 3.1, 4).
//
// Where the events come from: each watched mailbox has a subscription to
// the process's shared folder watch (watch.go), which is the store's change
// detection (inotify, and stat polling on shared storage), so deliveries
// by lmtpd, deletions by pop3d, other imapd processes and files moved by
// hand are all seen. A wake marks the mailbox dirty and starts one short
// goroutine that, under the session's write lock, syncs the dirty
// mailboxes and writes a STATUS for each one whose state changed. Changes
// to the list of mailboxes and subscriptions are found by comparing the
// lists when a session of this process reports one (watchHub.userChanged)
// and every imapd.idle_recheck otherwise.
//
// The cost is bounded: a session watches at most
// imapd.notify_max_mailboxes mailboxes; more is NO [NOTIFICATIONOVERFLOW]
// at NOTIFY SET, or an untagged OK [NOTIFICATIONOVERFLOW] and NOTIFY NONE
// when new mailboxes later take the set beyond it (RFC 5465 5.8).
//
// MailboxMetadataChange and ServerMetadataChange (RFC 5465 5.6, 5.7) are
// in notifymeta.go.

func init() {
	commands["NOTIFY"] = commandSpec{authState, (*session).cmdNotify}
}

// notifyEvents are the events a client asked for on some mailboxes.
type notifyEvents struct {
	messageNew, messageExpunge, flagChange bool
	mailboxName, subscriptionChange        bool
	// RFC 5465 5.6, 5.7 (notifymeta.go).
	mailboxMetadata, serverMetadata bool
	// fetch are MessageNew's FETCH attributes (selected mailbox only).
	fetch *wire.FetchRequest
}

func (e notifyEvents) message() bool { return e.messageNew || e.messageExpunge || e.flagChange }

func (e *notifyEvents) merge(o notifyEvents) {
	e.messageNew = e.messageNew || o.messageNew
	e.messageExpunge = e.messageExpunge || o.messageExpunge
	e.flagChange = e.flagChange || o.flagChange
	e.mailboxName = e.mailboxName || o.mailboxName
	e.subscriptionChange = e.subscriptionChange || o.subscriptionChange
	e.mailboxMetadata = e.mailboxMetadata || o.mailboxMetadata
	e.serverMetadata = e.serverMetadata || o.serverMetadata
}

// notifyFilter is one event group on mailboxes other than the selected one
// (RFC 5465 6.2 to 6.6).
type notifyFilter struct {
	kind   string // inboxes, personal, subscribed, subtree, mailboxes
	names  []string
	events notifyEvents
}

// matches says whether the filter covers the mailbox name.
func (f *notifyFilter) matches(name string, subscribed map[string]bool) bool {
	switch f.kind {
	case "inboxes", "personal":
		// RFC 5465 6.3: lmtpd delivers into any folder (a recipient's
		// +detail), so "inboxes" is "personal".
		return true
	case "subscribed":
		return subscribed[name]
	case "subtree":
		for _, n := range f.names {
			if name == n || strings.HasPrefix(name, n+string(delim)) {
				return true
			}
		}
	case "mailboxes":
		// RFC 5465 6.6: no wildcard expansion.
		for _, n := range f.names {
			if name == n {
				return true
			}
		}
	}
	return false
}

// notifySpec is a parsed NOTIFY SET.
type notifySpec struct {
	status bool
	// selected are the message events of the selected mailbox; nil is
	// SELECTED NONE (RFC 5465 3.1).
	selected *notifyEvents
	delayed  bool // SELECTED-DELAYED (RFC 5465 6.1.2)
	filters  []notifyFilter
}

// eventsFor merges the events of every filter covering name.
func (sp *notifySpec) eventsFor(name string, subscribed map[string]bool) notifyEvents {
	var ev notifyEvents
	for i := range sp.filters {
		if sp.filters[i].matches(name, subscribed) {
			ev.merge(sp.filters[i].events)
		}
	}
	return ev
}

// listEvents says whether any filter asks for MailboxName or
// SubscriptionChange, or depends on the subscriptions (RFC 5465 6.4: the
// "subscribed" set is evaluated again when they change).
func (sp *notifySpec) listEvents() bool {
	for _, f := range sp.filters {
		if f.events.mailboxName || f.events.subscriptionChange || f.kind == "subscribed" || f.kind == "personal" ||
			f.kind == "inboxes" || f.kind == "subtree" {
			return true
		}
	}
	return false
}

// boxState is what a STATUS about a watched mailbox was last based on.
type boxState struct {
	messages, uidNext, uidValidity, unseen uint32
	modSeq                                 uint64
}

func stateOf(snap *maildir.Snapshot) boxState {
	st := boxState{messages: uint32(len(snap.Messages)), uidNext: snap.UIDNext,
		uidValidity: snap.UIDValidity, modSeq: snap.HighestModSeq}
	for i := range snap.Messages {
		if !hasFlag(snap.Messages[i].Flags, imap.FlagSeen) {
			st.unseen++
		}
	}
	return st
}

// notifyBox is one mailbox watched for message events.
type notifyBox struct {
	name        string
	folder      *maildir.Folder
	events      notifyEvents
	dirty       atomic.Bool
	last        boxState
	unsubscribe func()
}

// notifyState is a session's NOTIFY SET in effect. Everything but the
// atomics and renames is used under the session's wmu.
type notifyState struct {
	spec  *notifySpec
	boxes map[string]*notifyBox
	// selDir and selUnsub are the watch of the selected mailbox, for its
	// events between commands.
	selDir   string
	selUnsub func()
	// names and subs are the mailboxes and subscriptions at the last look.
	names, subs map[string]bool
	listDirty   atomic.Bool
	// anyDirty says some box is dirty, so that the commands of a session
	// watching many mailboxes do not look at each after every command.
	anyDirty  atomic.Bool
	unsubUser func()
	timer     *time.Timer

	mu      sync.Mutex
	renames []mailboxEvent // by other sessions of this process, not yet told

	// meta are the metadata files watched for MailboxMetadataChange and
	// ServerMetadataChange ("" is the server's), as last seen; metaDirty
	// says one may have changed, metaForce that a session of this process
	// changed one, so they are read whatever their stamps say
	// (notifymeta.go).
	meta                 map[string]*metaSeen
	metaDirty, metaForce atomic.Bool
}

// notifySupported lists the events of BADEVENT (RFC 5465 3.1: all those
// the server supports). MailboxMetadataChange and ServerMetadataChange
// come with METADATA and METADATA-SERVER (RFC 5465 5.6, 5.7: REQUIRED
// then); AnnotationChange needs ANNOTATE (RFC 5257), which tern lacks.
const notifySupported = "(MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange" +
	" MailboxMetadataChange ServerMetadataChange)"

// notifyBad is the answer to a NOTIFY that does not follow RFC 5465 8.
func notifyBad(text string) error { return wire.Bad("NOTIFY: %s", text) }

// cmdNotify: NOTIFY SET / NOTIFY NONE (RFC 5465 3.1).
func (s *session) cmdNotify(c *wire.Command, p *wire.Parser) (reply, error) {
	if !p.SP() {
		return reply{}, notifyBad("SET or NONE expected")
	}
	verb, err := p.Atom()
	if err != nil {
		return reply{}, notifyBad("SET or NONE expected")
	}
	switch strings.ToUpper(verb) {
	case "NONE":
		if err := p.End(); err != nil {
			return reply{}, err
		}
		s.notifyStop()
		return reply{}, nil
	case "SET":
	default:
		return reply{}, notifyBad("SET or NONE expected")
	}
	spec, unsupported, err := parseNotifySet(p)
	if err != nil {
		return reply{}, err
	}
	if len(unsupported) > 0 {
		// RFC 5465 3.1: an unsupported event is NO (not BAD), with
		// BADEVENT listing what is supported.
		return reply{}, &imap.Error{Type: imap.StatusResponseTypeNo,
			Code: imap.ResponseCode("BADEVENT " + notifySupported),
			Text: "Unsupported NOTIFY event: " + strings.Join(unsupported, " ")}
	}
	return reply{}, s.notifySet(spec)
}

// parseNotifySet reads the rest of NOTIFY SET (RFC 5465 8). Unknown
// events are returned rather than failing, for BADEVENT.
func parseNotifySet(p *wire.Parser) (*notifySpec, []string, error) {
	spec := &notifySpec{}
	if !p.SP() {
		return nil, nil, notifyBad("event groups expected")
	}
	if p.Peek() != '(' {
		w, err := p.Atom()
		if err != nil || !strings.EqualFold(w, "STATUS") || !p.SP() {
			return nil, nil, notifyBad("STATUS or event groups expected")
		}
		spec.status = true
	}
	var unsupported []string
	sawSelected := false
	for {
		if !p.Special('(') {
			return nil, nil, notifyBad("event group expected")
		}
		kind, err := p.Atom()
		if err != nil {
			return nil, nil, notifyBad("mailbox filter expected")
		}
		kind = strings.ToLower(kind)
		f := notifyFilter{kind: kind}
		switch kind {
		case "selected", "selected-delayed":
			// RFC 5465 6.1: only one of them.
			if sawSelected {
				return nil, nil, notifyBad("SELECTED given twice")
			}
			sawSelected = true
		case "inboxes", "personal", "subscribed":
		case "subtree", "mailboxes":
			if !p.SP() {
				return nil, nil, notifyBad(kind + " needs mailbox names")
			}
			if f.names, err = notifyMailboxes(p); err != nil {
				return nil, nil, err
			}
		default:
			return nil, nil, notifyBad("unknown mailbox filter " + kind)
		}
		if !p.SP() {
			return nil, nil, notifyBad("events expected")
		}
		selected := kind == "selected" || kind == "selected-delayed"
		ev, bad, err := parseNotifyEvents(p, selected)
		if err != nil {
			return nil, nil, err
		}
		unsupported = append(unsupported, bad...)
		if !p.Special(')') {
			return nil, nil, notifyBad("end of event group expected")
		}
		if selected {
			if ev.message() || ev.fetch != nil {
				e := ev
				spec.selected = &e
			}
			spec.delayed = kind == "selected-delayed"
		} else {
			f.events = ev
			spec.filters = append(spec.filters, f)
		}
		if !p.SP() {
			break
		}
	}
	if err := p.End(); err != nil {
		return nil, nil, err
	}
	return spec, unsupported, nil
}

// notifyMailboxes reads one-or-more-mailbox.
func notifyMailboxes(p *wire.Parser) ([]string, error) {
	var names []string
	if p.Peek() == '(' {
		err := p.List(func() error {
			n, err := p.Mailbox()
			names = append(names, n)
			return err
		})
		return names, err
	}
	n, err := p.Mailbox()
	return []string{n}, err
}

// parseNotifyEvents reads events: "NONE" or a list of events. A FETCH
// attribute list may follow MessageNew for the selected mailbox only, and
// only message events apply to it (RFC 5465 6.1, 8).
//
// RFC 5465 5 wants BAD when MessageNew comes without MessageExpunge (or
// the other way round), or FlagChange without both. Dovecot accepts such
// lists and imaptest's notify group sends them; tern accepts them too and
// sends what was asked for.
func parseNotifyEvents(p *wire.Parser, selected bool) (notifyEvents, []string, error) {
	var ev notifyEvents
	var unsupported []string
	if !p.Special('(') {
		w, err := p.Atom()
		if err != nil || !strings.EqualFold(w, "NONE") {
			return ev, nil, notifyBad("event list or NONE expected")
		}
		return ev, nil, nil
	}
	for {
		name, err := p.Atom()
		if err != nil {
			return ev, nil, notifyBad("event expected")
		}
		mailboxEvent := false
		switch strings.ToLower(name) {
		case "messagenew":
			ev.messageNew = true
		case "messageexpunge":
			ev.messageExpunge = true
		case "flagchange":
			ev.flagChange = true
		case "mailboxname":
			ev.mailboxName, mailboxEvent = true, true
		case "subscriptionchange":
			ev.subscriptionChange, mailboxEvent = true, true
		case "mailboxmetadatachange":
			ev.mailboxMetadata, mailboxEvent = true, true
		case "servermetadatachange":
			ev.serverMetadata, mailboxEvent = true, true
		default:
			// AnnotationChange and any event-ext.
			unsupported = append(unsupported, name)
		}
		if mailboxEvent && selected {
			return ev, nil, notifyBad(name + " cannot apply to the selected mailbox")
		}
		if p.Special(')') {
			return ev, unsupported, nil
		}
		if !p.SP() {
			return ev, nil, notifyBad("event list expected")
		}
		if p.Peek() == '(' {
			if !strings.EqualFold(name, "MessageNew") {
				return ev, nil, notifyBad("only MessageNew takes FETCH attributes")
			}
			if !selected {
				return ev, nil, notifyBad("FETCH attributes apply to the selected mailbox only")
			}
			if ev.fetch, err = p.Fetch(); err != nil {
				return ev, nil, err
			}
			if p.Special(')') {
				return ev, unsupported, nil
			}
			if !p.SP() {
				return ev, nil, notifyBad("event list expected")
			}
		}
	}
}

// notifySet puts spec in effect: the watches, the STATUS responses asked
// for, and the implicit NOOP (RFC 5465 3.1).
func (s *session) notifySet(spec *notifySpec) error {
	s.notifyStop()
	st := &notifyState{spec: spec, boxes: make(map[string]*notifyBox)}
	names, subs, err := s.mailboxLists()
	if err != nil {
		return err
	}
	st.names, st.subs = names, subs
	watched := st.watchedNames()
	if n, max := st.watchCount(watched), s.srv.cfg().IMAPD.NotifyMaxMailboxes; n > max {
		// RFC 5465 3.1: a NOTIFY too expensive may be refused.
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: "NOTIFICATIONOVERFLOW",
			Text: fmt.Sprintf("NOTIFY would watch %d mailboxes; at most %d (imapd.notify_max_mailboxes)", n, max)}
	}
	s.notify = st
	if err := s.notifyWatch(watched); err != nil {
		s.notifyStop()
		return err
	}
	if err := s.metaTrack(); err != nil {
		s.notifyStop()
		return err
	}
	if spec.listEvents() || spec.metadataEvents() {
		st.unsubUser = s.srv.hub.subscribeUser(s.user, func(ev mailboxEvent) {
			if ev.from == s {
				return
			}
			if ev.metadata {
				st.metaForce.Store(true)
				st.metaDirty.Store(true)
				s.notifyWake()
				return
			}
			if ev.old != "" {
				st.mu.Lock()
				if len(st.renames) < 64 {
					st.renames = append(st.renames, ev)
				}
				st.mu.Unlock()
			}
			st.listDirty.Store(true)
			s.notifyWake()
		})
		s.notifyArm()
	}
	if spec.status {
		s.notifyInitialStatus()
	}
	s.notifySelected()
	return nil
}

// mailboxLists reads the user's mailbox names and subscriptions.
func (s *session) mailboxLists() (names, subs map[string]bool, err error) {
	folders, err := s.mbox.List()
	if err != nil {
		return nil, nil, storeError(s.log, "notify list", err)
	}
	sub, err := s.mbox.Subscriptions()
	if err != nil {
		return nil, nil, storeError(s.log, "notify subscriptions", err)
	}
	names = make(map[string]bool, len(folders))
	for _, f := range folders {
		names[f.Name] = true
	}
	subs = make(map[string]bool, len(sub))
	for _, n := range sub {
		subs[n] = true
	}
	return names, subs, nil
}

// watchedNames are the existing mailboxes some filter asks message events
// of (RFC 5465 3.1: a name that does not exist is ignored), sorted.
func (st *notifyState) watchedNames() []string {
	var out []string
	for name := range st.names {
		if st.spec.eventsFor(name, st.subs).message() {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// notifyWatch brings the watched mailboxes to names: new ones get a
// watch and a baseline state, gone ones lose theirs.
func (s *session) notifyWatch(names []string) error {
	st := s.notify
	keep := make(map[string]bool, len(names))
	for _, name := range names {
		keep[name] = true
		ev := st.spec.eventsFor(name, st.subs)
		if b, ok := st.boxes[name]; ok {
			b.events = ev
			continue
		}
		f, err := s.mbox.Folder(name)
		if errors.Is(err, maildir.ErrNotFound) {
			continue // gone since the list was read
		}
		if err != nil {
			return storeError(s.log, "notify", err)
		}
		snap, err := f.Sync()
		if errors.Is(err, maildir.ErrNotFound) {
			continue
		}
		if err != nil {
			return storeError(s.log, "notify", err)
		}
		b := &notifyBox{name: name, folder: f, events: ev, last: stateOf(snap)}
		b.unsubscribe, err = s.srv.hub.subscribe(f, func() {
			b.dirty.Store(true)
			st.anyDirty.Store(true)
			s.notifyWake()
		})
		if err != nil {
			return storeError(s.log, "notify watch", err)
		}
		st.boxes[name] = b
	}
	for name, b := range st.boxes {
		if !keep[name] {
			b.unsubscribe()
			delete(st.boxes, name)
		}
	}
	return nil
}

// notifyInitialStatus writes the STATUS responses NOTIFY SET STATUS asks
// for (RFC 5465 3.1): MESSAGES, UIDNEXT and UIDVALIDITY for MessageNew,
// MESSAGES for MessageExpunge, UIDVALIDITY and HIGHESTMODSEQ for
// FlagChange; none for the selected mailbox.
func (s *session) notifyInitialStatus() {
	for _, name := range s.notify.sortedBoxes() {
		b := s.notify.boxes[name]
		if s.isSelected(name) {
			continue
		}
		d := &imap.StatusData{Mailbox: name}
		st := b.last
		if b.events.messageNew || b.events.messageExpunge {
			d.NumMessages = &st.messages
		}
		if b.events.messageNew {
			d.UIDNext = imap.UID(st.uidNext)
		}
		if b.events.messageNew || b.events.flagChange {
			d.UIDValidity = st.uidValidity
		}
		if b.events.flagChange {
			d.HighestModSeq = st.modSeq
		}
		s.enc.StatusData(d)
	}
}

func (st *notifyState) sortedBoxes() []string {
	names := make([]string, 0, len(st.boxes))
	for name := range st.boxes {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// isSelected says whether name is the selected mailbox.
func (s *session) isSelected(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sel != nil && s.sel.name == name
}

// notifyStop ends NOTIFY (NOTIFY NONE, a new NOTIFY SET, logout).
func (s *session) notifyStop() {
	st := s.notify
	if st == nil {
		return
	}
	s.notify = nil
	for _, b := range st.boxes {
		b.unsubscribe()
	}
	if st.selUnsub != nil {
		st.selUnsub()
	}
	if st.unsubUser != nil {
		st.unsubUser()
	}
	if st.timer != nil {
		st.timer.Stop()
	}
}

// notifyArm schedules the next look at the mailbox list, for changes
// made by other processes (imapd.idle_recheck).
func (s *session) notifyArm() {
	st := s.notify
	if st.timer != nil {
		st.timer.Stop()
	}
	st.timer = time.AfterFunc(s.srv.cfg().IMAPD.IdleRecheck.D(), func() {
		st.listDirty.Store(true)
		st.metaDirty.Store(true)
		s.notifyWake()
	})
}

// notifySelected keeps the watch of the selected mailbox in step with
// SELECT and CLOSE, when NOTIFY asks for its events between commands.
func (s *session) notifySelected() {
	st := s.notify
	if st == nil {
		return
	}
	s.mu.Lock()
	var f *maildir.Folder
	if s.sel != nil && st.spec.selected != nil {
		f = s.sel.folder
	}
	s.mu.Unlock()
	dir := ""
	if f != nil {
		dir = f.Dir()
	}
	if dir == st.selDir {
		return
	}
	if st.selUnsub != nil {
		st.selUnsub()
		st.selUnsub = nil
	}
	st.selDir = ""
	if f == nil {
		return
	}
	unsub, err := s.srv.hub.subscribe(f, s.notifyWake)
	if err != nil {
		s.log.Warn("notify: watch of the selected mailbox failed", "err", err)
		return
	}
	st.selDir, st.selUnsub = dir, unsub
}

// notifyWake is the signal of a watch; it never blocks the watch.
func (s *session) notifyWake() {
	if !s.notifyPending.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer listen.Recover(s.log, "notify update")
		s.notifyPush()
	}()
}

// notifyPush writes NOTIFY's events between commands (RFC 5465 3.1: the
// client listens all the time). A command in progress holds wmu; the
// events then go out when it has ended.
func (s *session) notifyPush() {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.notifyPending.Store(false)
	if s.notify == nil || s.closed.Load() || s.state == stateLogout {
		return
	}
	s.writeUnsolicited("notify update", func() error {
		if s.idling {
			return s.updates(true)
		}
		if sp := s.notify.spec.selected; sp != nil {
			// RFC 5465 6.1.2: SELECTED-DELAYED keeps EXPUNGEs for a
			// command.
			return s.updates(sp.messageExpunge && !s.notify.spec.delayed)
		}
		return s.notifyOthers()
	})
}

// updates writes the unilateral responses: the selected mailbox's changes
// (poll), the FETCH of new messages NOTIFY asked for (RFC 5465 5.2), and
// the events of the other mailboxes. With wmu held.
func (s *session) updates(allowExpunge bool) error {
	var last uint32
	var fetch *wire.FetchRequest
	if s.notify != nil && s.notify.spec.selected != nil && s.notify.spec.selected.messageNew {
		fetch = s.notify.spec.selected.fetch
	}
	if fetch != nil {
		last = s.lastUID()
	}
	if err := s.poll(allowExpunge); err != nil {
		return err
	}
	if fetch != nil && s.state == stateSelected {
		if next := s.lastUID(); next > last {
			// RFC 5465 5.2: the FETCH follows the EXISTS.
			w := &FetchWriter{s: s, req: fetch}
			set := imap.UIDSet{imap.UIDRange{Start: imap.UID(last + 1), Stop: imap.UID(next)}}
			if err := s.Fetch(w, set, fetch.Options); err != nil {
				return err
			}
			// The FETCH synced outside a command: the next poll must
			// sync again, not take this snapshot as its command's.
			s.mu.Lock()
			if s.sel != nil {
				s.sel.fresh = false
			}
			s.mu.Unlock()
		}
	}
	if s.notify == nil {
		return nil
	}
	return s.notifyOthers()
}

// lastUID is the highest UID the client knows in the selected mailbox.
func (s *session) lastUID() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sel == nil || len(s.sel.uids) == 0 {
		return 0
	}
	return s.sel.uids[len(s.sel.uids)-1]
}

// notifyOthers writes the events of the mailboxes other than the selected
// one: LIST for names and subscriptions, STATUS for messages. With wmu
// held.
func (s *session) notifyOthers() error {
	st := s.notify
	if st == nil {
		return nil
	}
	s.notifySelected()
	if st.listDirty.Swap(false) {
		if err := s.notifyLists(false); err != nil || s.notify == nil {
			return err
		}
		s.notifyArm()
	}
	if st.metaDirty.Swap(false) {
		if err := s.metaCheck(); err != nil {
			return err
		}
	}
	if !st.anyDirty.Swap(false) {
		return nil
	}
	for _, name := range st.sortedBoxes() {
		b := st.boxes[name]
		if !b.dirty.Swap(false) {
			continue
		}
		snap, err := b.folder.Sync()
		if errors.Is(err, maildir.ErrNotFound) {
			// Deleted: the list comparison reports it.
			st.listDirty.Store(true)
			continue
		}
		if err != nil {
			return storeError(s.log, "notify", err)
		}
		now := stateOf(snap)
		if s.isSelected(name) {
			// RFC 5465 3.1: SELECTED's events stand for the selected
			// mailbox; its STATUS would repeat them.
			b.last = now
			continue
		}
		if d := s.statusChange(b, now, flagsChanged(snap, b.last)); d != nil {
			s.enc.StatusData(d)
		}
		b.last = now
	}
	return nil
}

// flagsChanged says whether a message that was there at was changed
// since: new messages and expunges raise the modseq too, but are not
// FlagChange.
func flagsChanged(snap *maildir.Snapshot, was boxState) bool {
	if snap.HighestModSeq == was.modSeq || snap.UIDValidity != was.uidValidity {
		return false
	}
	for i := range snap.Messages {
		m := &snap.Messages[i]
		if m.UID >= was.uidNext {
			break
		}
		if m.ModSeq > was.modSeq {
			return true
		}
	}
	return false
}

// statusChange is the STATUS that tells of the change from b.last to now,
// or nil when no event asked for covers it (RFC 5465 5.1 to 5.3).
func (s *session) statusChange(b *notifyBox, now boxState, flags bool) *imap.StatusData {
	was := b.last
	d := &imap.StatusData{Mailbox: b.name}
	told := false
	if now.uidValidity != was.uidValidity {
		// RFC 5465 5.1: UIDVALIDITY changes are told.
		d.UIDValidity, told = now.uidValidity, true
	}
	added := now.uidNext != was.uidNext
	removed := now.messages < was.messages || (added && now.messages-was.messages != now.uidNext-was.uidNext)
	if (added && b.events.messageNew) || (removed && b.events.messageExpunge) || (told && b.events.message()) {
		// RFC 5465 5.2, 5.3: STATUS (UIDNEXT MESSAGES).
		d.NumMessages = &now.messages
		d.UIDNext = imap.UID(now.uidNext)
		told = true
	}
	if flags && b.events.flagChange {
		if s.condstore {
			// RFC 5465 5.1: HIGHESTMODSEQ and UIDVALIDITY.
			d.UIDValidity, told = now.uidValidity, true
		}
		if now.unseen != was.unseen {
			d.NumUnseen, told = &now.unseen, true
		}
	}
	if !told {
		return nil
	}
	if s.condstore && now.modSeq != was.modSeq {
		// RFC 5465 5.2, 5.3: with CONDSTORE or QRESYNC enabled.
		d.HighestModSeq = now.modSeq
	}
	return d
}

// notifyLists compares the mailbox list and the subscriptions with the
// last look, writes the LIST responses the client asked for (RFC 5465
// 5.4, 5.5), and watches the mailboxes the filters now cover. silent
// takes the lists in without telling: the change was this session's own
// (RFC 5465 5: SHOULD NOT notify the client of its own changes).
func (s *session) notifyLists(silent bool) error {
	st := s.notify
	names, subs, err := s.mailboxLists()
	if err != nil {
		return err
	}
	st.mu.Lock()
	renames := st.renames
	st.renames = nil
	st.mu.Unlock()
	if !silent {
		s.tellLists(names, subs, renames)
	}
	st.names, st.subs = names, subs
	watched := st.watchedNames()
	if n := st.watchCount(watched); n > s.srv.cfg().IMAPD.NotifyMaxMailboxes {
		// RFC 5465 5.8: tell, and behave as after NOTIFY NONE.
		s.notifyStop()
		s.enc.Atom("* OK ").Code("NOTIFICATIONOVERFLOW", "").
			Text(fmt.Sprintf("NOTIFY would now watch %d mailboxes; notifications are off", n)).CRLF()
		return nil
	}
	if err := s.notifyWatch(watched); err != nil {
		return err
	}
	return s.metaTrack()
}

// tellLists writes LIST for each created, deleted or renamed mailbox the
// client asked MailboxName of, and each subscription change it asked
// SubscriptionChange of.
func (s *session) tellLists(names, subs map[string]bool, renames []mailboxEvent) {
	st := s.notify
	wants := func(name string, subscribedBefore bool, pick func(notifyEvents) bool) bool {
		for i := range st.spec.filters {
			f := &st.spec.filters[i]
			if !pick(f.events) {
				continue
			}
			if f.matches(name, subs) || (f.kind == "subscribed" && subscribedBefore) {
				return true
			}
		}
		return false
	}
	nameEvents := func(e notifyEvents) bool { return e.mailboxName }
	subEvents := func(e notifyEvents) bool { return e.subscriptionChange }
	renamedTo := make(map[string]string)
	renamedFrom := make(map[string]bool)
	for _, r := range renames {
		if st.names[r.old] && !names[r.old] && names[r.new] && !st.names[r.new] {
			renamedTo[r.new] = r.old
			renamedFrom[r.old] = true
		}
	}
	var changed []string
	for name := range st.names {
		if !names[name] && !renamedFrom[name] {
			changed = append(changed, name)
		}
	}
	for name := range names {
		if !st.names[name] {
			changed = append(changed, name)
		}
	}
	sort.Strings(changed)
	for _, name := range changed {
		if !wants(name, st.subs[name], nameEvents) && (renamedTo[name] == "" || !wants(renamedTo[name], st.subs[renamedTo[name]], nameEvents)) {
			continue
		}
		if !names[name] {
			// RFC 5465 5.4: a deleted mailbox is \NonExistent.
			s.enc.ListData("LIST", &imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNonExistent}, Delim: delim, Mailbox: name})
			continue
		}
		s.writeListOf(name, renamedTo[name])
	}
	var subChanged []string
	for name := range subs {
		if !st.subs[name] {
			subChanged = append(subChanged, name)
		}
	}
	for name := range st.subs {
		if !subs[name] {
			subChanged = append(subChanged, name)
		}
	}
	sort.Strings(subChanged)
	for _, name := range subChanged {
		if wants(name, st.subs[name], subEvents) {
			s.writeListOf(name, "")
		}
	}
}

// writeListOf writes the LIST response of one mailbox with its attributes
// computed as LIST (RETURN (SUBSCRIBED CHILDREN)) would (RFC 5465 5.5),
// and OLDNAME after a rename (RFC 5465 5.4).
func (s *session) writeListOf(name, oldName string) {
	q := listQuery{patterns: []string{name}, options: &imap.ListOptions{ReturnSubscribed: true, ReturnChildren: true}}
	found := false
	err := s.listMailboxes(q, func(d *imap.ListData) error {
		if d.Mailbox != name {
			return nil // a name with wildcards matched others
		}
		found = true
		d.OldName = oldName
		s.enc.ListData("LIST", d)
		return nil
	})
	if err == nil && !found {
		// A subscription to a mailbox that does not exist.
		attrs := []imap.MailboxAttr{imap.MailboxAttrNonExistent}
		if sub, _ := s.mbox.Subscriptions(); slices.Contains(sub, name) {
			attrs = append(attrs, imap.MailboxAttrSubscribed)
		}
		s.enc.ListData("LIST", &imap.ListData{Attrs: attrs, Delim: delim, Mailbox: name})
	}
}

// notifyListChanged is called after this session changed the mailbox list
// or subscriptions: other NOTIFY sessions of the user are told, and this
// one takes the new lists in silently.
func (s *session) notifyListChanged(old, new string) {
	s.srv.hub.userChanged(s.user, mailboxEvent{from: s, old: old, new: new})
	if s.notify != nil {
		if err := s.notifyLists(true); err != nil {
			s.log.Debug("notify lists", "err", err)
		}
	}
}
