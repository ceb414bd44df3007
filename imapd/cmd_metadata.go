package main

import (
	"bytes"
	"errors"
	"sort"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"

	"tern/common/maildir"
	"tern/imapd/wire"
)

// METADATA (RFC 5464): GETMETADATA and SETMETADATA on the server's
// entries (mailbox "") and each mailbox's, /private and /shared alike
// (each user's tree is their own, so both are kept for the user). The
// entries live beside the Maildir (common/maildir/metadata.go,
// tern-maildir(5)); the limits are metadata_max_size,
// metadata_max_entries and metadata_max_total of [imapd].

func init() {
	commands["GETMETADATA"] = commandSpec{authState, (*session).cmdGetMetadata}
	commands["SETMETADATA"] = commandSpec{authState, (*session).cmdSetMetadata}
}

// metadataName reads an entry name; RFC 5464 3.2: names are
// case-insensitive (kept in lower case) and must be valid. GETMETADATA
// may also name the roots /private and /shared, to list what is below
// them with DEPTH.
func metadataName(p *wire.Parser, root bool) (string, error) {
	s, err := p.AString()
	if err != nil {
		return "", err
	}
	s = strings.ToLower(s)
	if !maildir.ValidEntryName(s) && !(root && (s == "/private" || s == "/shared")) {
		return "", wire.Bad("Invalid entry name")
	}
	return s, nil
}

// cmdGetMetadata: RFC 5464 4.2.
func (s *session) cmdGetMetadata(c *wire.Command, p *wire.Parser) (reply, error) {
	maxSize, depth := int64(-1), 0
	if !p.SP() {
		return reply{}, wire.Bad("GETMETADATA needs a mailbox and entries")
	}
	if p.Peek() == '(' {
		// RFC 5464 4.2.1 MAXSIZE, 4.2.2 DEPTH.
		err := p.List(func() error {
			a, err := p.Atom()
			if err != nil || !p.SP() {
				return wire.Bad("Invalid GETMETADATA option")
			}
			switch strings.ToUpper(a) {
			case "MAXSIZE":
				n, err := p.Number()
				maxSize = int64(n)
				return err
			case "DEPTH":
				v, err := p.Atom()
				switch strings.ToLower(v) {
				case "0":
					depth = 0
				case "1":
					depth = 1
				case "infinity":
					depth = -1
				default:
					return wire.Bad("DEPTH is 0, 1 or infinity")
				}
				return err
			}
			return wire.Bad("Unknown GETMETADATA option")
		})
		if err != nil {
			return reply{}, err
		}
		if !p.SP() {
			return reply{}, wire.Bad("GETMETADATA needs a mailbox and entries")
		}
	}
	// The mailbox "" is the server (RFC 5464 4.2).
	name, err := p.Mailbox()
	if err != nil {
		return reply{}, err
	}
	if !p.SP() {
		return reply{}, wire.Bad("GETMETADATA needs entries")
	}
	var wanted []string
	if p.Peek() == '(' {
		err = p.List(func() error {
			e, err := metadataName(p, true)
			wanted = append(wanted, e)
			return err
		})
	} else {
		var e string
		e, err = metadataName(p, true)
		wanted = append(wanted, e)
	}
	if err != nil {
		return reply{}, err
	}
	if err := p.End(); err != nil {
		return reply{}, err
	}
	entries, err := s.mbox.Metadata(name)
	if err != nil {
		return reply{}, storeError(s.log, "getmetadata", err)
	}
	found := map[string]bool{}
	var names []string
	var longest int64
	add := func(k string) {
		if found[k] {
			return
		}
		found[k] = true
		if v, ok := entries[k]; ok && maxSize >= 0 && int64(len(v)) > maxSize {
			// RFC 5464 4.2.1: left out, and the largest size said.
			longest = max(longest, int64(len(v)))
			return
		}
		names = append(names, k)
	}
	for _, w := range wanted {
		if _, ok := entries[w]; ok || (depth == 0 && w != "/private" && w != "/shared") {
			// RFC 5464 4.2: an entry asked for by name and not set
			// is answered NIL, as Dovecot does.
			add(w)
		}
		if depth == 0 {
			continue
		}
		for k := range entries {
			rest, ok := strings.CutPrefix(k, w+"/")
			if ok && (depth < 0 || !strings.Contains(rest, "/")) {
				add(k)
			}
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		// RFC 5464 5.4: a METADATA response lists at least one entry.
		return metadataDone(longest), nil
	}
	e := s.enc
	e.Atom("* METADATA ").Mailbox(name).Atom(" (")
	for i, k := range names {
		if i > 0 {
			e.SP()
		}
		e.AString(k).SP()
		switch v, ok := entries[k]; {
		case !ok:
			e.Atom("NIL") // RFC 5464 4.2: an entry with no value
		case bytes.IndexByte(v, 0) >= 0:
			// RFC 5464 5.4: value = nstring / literal8; a NUL can
			// only travel in a literal8 (RFC 3516).
			e.LiteralHeader(int64(len(v)), true).Raw(string(v))
		default:
			e.String(string(v))
		}
	}
	e.Byte(')').CRLF()
	return metadataDone(longest), nil
}

// metadataDone is GETMETADATA's tagged OK, with RFC 5464 4.2.1's
// LONGENTRIES when MAXSIZE left entries out.
func metadataDone(longest int64) reply {
	if longest > 0 {
		return reply{code: "METADATA", arg: "LONGENTRIES " + strconv.FormatInt(longest, 10), text: "GETMETADATA completed"}
	}
	return reply{}
}

// cmdSetMetadata: RFC 5464 4.3.
func (s *session) cmdSetMetadata(c *wire.Command, p *wire.Parser) (reply, error) {
	if !p.SP() {
		return reply{}, wire.Bad("SETMETADATA needs a mailbox")
	}
	name, err := p.Mailbox() // "" is the server
	if err != nil {
		return reply{}, err
	}
	if !p.SP() {
		return reply{}, wire.Bad("SETMETADATA needs entries and values")
	}
	set := map[string][]byte{}
	err = p.List(func() error {
		k, err := metadataName(p, false)
		if err != nil {
			return err
		}
		if !p.SP() {
			return wire.Bad("Entry value expected")
		}
		v, ok, err := p.NString()
		if err != nil {
			return err
		}
		if ok {
			set[k] = []byte(v)
		} else {
			set[k] = nil // NIL removes the entry
		}
		return nil
	})
	if err != nil {
		return reply{}, err
	}
	if len(set) == 0 {
		return reply{}, wire.Bad("SETMETADATA needs entries and values")
	}
	if err := p.End(); err != nil {
		return reply{}, err
	}
	cfg := &s.srv.cfg().IMAPD
	lim := maildir.MetadataLimits{MaxSize: int64(cfg.MetadataMaxSize), MaxEntries: cfg.MetadataMaxEntries,
		MaxTotal: int64(cfg.MetadataMaxTotal)}
	switch err := s.mbox.SetMetadata(name, set, lim); {
	case errors.Is(err, maildir.ErrMetadataTooLarge):
		return reply{}, &imap.Error{Type: imap.StatusResponseTypeNo, Code: wire.MetadataMaxSizeCode(int(lim.MaxSize)),
			Text: "Metadata value too large"}
	case errors.Is(err, maildir.ErrMetadataTooMany):
		return reply{}, &imap.Error{Type: imap.StatusResponseTypeNo, Code: "METADATA TOOMANY",
			Text: "Too many metadata entries"}
	case err != nil:
		return reply{}, storeError(s.log, "setmetadata", err)
	}
	s.notifyMetadataSet(name) // RFC 5465 5.6, 5.7 (notifymeta.go)
	return reply{}, nil
}
