package smtptest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"strings"
)

// DSN is a delivery status notification taken apart the way a mail
// client would.
type DSN struct {
	Subject    string
	ReturnPath string   // as delivered: "<>" for a notice
	Types      []string // the MIME types of the report's parts
	// PerMessage and PerRecipient are the blocks of the
	// message/delivery-status part (RFC 3464 2.1): one per message, then
	// one per recipient.
	PerMessage   textproto.MIMEHeader
	PerRecipient []textproto.MIMEHeader
	Returned     string // the returned message, or its header
}

// ParseDSN checks the structure of a notice, RFC 6522 multipart/report
// with report-type delivery-status whose parts are a human-readable text,
// the message/delivery-status of RFC 3464 2.1, and the returned message or
// its header (or their message/global types, RFC 6533), and returns its
// parts; an error says what is wrong.
func ParseDSN(raw string) (*DSN, error) {
	msg, err := mail.ReadMessage(strings.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("the notice does not parse: %w", err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	rt := params["report-type"]
	if err != nil || mt != "multipart/report" || (rt != "delivery-status" && rt != "global-delivery-status") {
		return nil, fmt.Errorf("the notice's Content-Type is %q (%v), want multipart/report; report-type=delivery-status",
			msg.Header.Get("Content-Type"), err)
	}
	d := &DSN{Subject: msg.Header.Get("Subject"), ReturnPath: msg.Header.Get("Return-Path")}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("the notice's MIME structure: %w", err)
		}
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		d.Types = append(d.Types, ct)
		body, err := io.ReadAll(p)
		if err != nil {
			return nil, fmt.Errorf("the notice's %s part: %w", ct, err)
		}
		switch ct {
		case "message/delivery-status", "message/global-delivery-status":
			tr := textproto.NewReader(bufio.NewReader(bytes.NewReader(body)))
			for i := 0; ; i++ {
				h, err := tr.ReadMIMEHeader()
				if len(h) > 0 {
					if i == 0 {
						d.PerMessage = h
					} else {
						d.PerRecipient = append(d.PerRecipient, h)
					}
				}
				if err != nil {
					break
				}
			}
		case "message/rfc822", "text/rfc822-headers", "message/global", "message/global-headers":
			d.Returned = string(body)
		}
	}
	// RFC 6522 3: the text first, the report second, then the message;
	// RFC 6533 6: the message/global types of a UTF-8 notice, together.
	ascii := len(d.Types) == 3 && d.Types[1] == "message/delivery-status" &&
		(d.Types[2] == "message/rfc822" || d.Types[2] == "text/rfc822-headers")
	global := len(d.Types) == 3 && d.Types[1] == "message/global-delivery-status" &&
		(d.Types[2] == "message/global" || d.Types[2] == "message/global-headers")
	if !(ascii || global) || d.Types[0] != "text/plain" || global != (rt == "global-delivery-status") {
		return nil, fmt.Errorf("the notice's parts are %v, want text/plain, message/delivery-status, message/rfc822", d.Types)
	}
	if d.PerMessage == nil {
		return nil, fmt.Errorf("the notice has no per-message fields")
	}
	return d, nil
}
