package main

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	gomessage "github.com/emersion/go-message"
	"golang.org/x/net/html"
)

// PREVIEW (RFC 8970): a short plain-text view of a message for message
// lists. The preview is made from the first text/plain part that is not
// an attachment, else from the first text/html one with its markup
// removed; transfer encoding and charset are decoded by go-message (with
// the charsets search.go registers); runs of white space become one
// space; at most 256 characters are kept (RFC 8970 3.1). A message with
// no such text gives the empty string, as the RFC requires. At most
// preview_max_read bytes of the message are read, so a preview costs
// bounded work whatever the message's size; the preview is made whether
// or not the client said LAZY (RFC 8970 3.2 allows either), since it
// costs no more than that read.

// previewMaxChars is RFC 8970 3.1's limit: "no more than 256 characters".
const previewMaxChars = 256

// makePreview returns the preview of the message r, reading at most
// maxRead bytes of it.
func makePreview(r io.Reader, maxRead int64) string {
	e, _ := gomessage.Read(bufio.NewReader(io.LimitReader(r, maxRead)))
	if e == nil {
		return ""
	}
	var htmlText string
	text, found := previewPart(e, &htmlText, 0)
	if !found {
		text = htmlText
	}
	return previewText(text)
}

// previewPart walks the MIME tree depth first and returns the decoded
// text of the first inline text/plain part; the first text/html part's
// text is kept in htmlText in case there is none.
func previewPart(e *gomessage.Entity, htmlText *string, depth int) (string, bool) {
	if mr := e.MultipartReader(); mr != nil {
		if depth >= maxMIMEDepth {
			return "", false
		}
		for {
			p, err := mr.NextPart()
			if p == nil || err != nil {
				return "", false
			}
			if s, ok := previewPart(p, htmlText, depth+1); ok {
				return s, true
			}
		}
	}
	if disp, _, _ := e.Header.ContentDisposition(); strings.EqualFold(disp, "attachment") {
		return "", false
	}
	t, _, _ := e.Header.ContentType()
	switch {
	case t == "" || t == "text/plain":
		body, _ := io.ReadAll(e.Body)
		return string(body), true
	case t == "text/html" && *htmlText == "":
		*htmlText = htmlToText(e.Body)
	}
	return "", false
}

// htmlToText keeps the text of an HTML document: character references
// decoded, the contents of script, style and head left out.
func htmlToText(r io.Reader) string {
	z := html.NewTokenizer(r)
	var b strings.Builder
	skip := 0
	for {
		switch z.Next() {
		case html.ErrorToken:
			return b.String()
		case html.StartTagToken:
			if name, _ := z.TagName(); isHiddenTag(name) {
				skip++
			}
			b.WriteByte(' ')
		case html.EndTagToken:
			if name, _ := z.TagName(); isHiddenTag(name) && skip > 0 {
				skip--
			}
			b.WriteByte(' ')
		case html.SelfClosingTagToken:
			b.WriteByte(' ')
		case html.TextToken:
			if skip == 0 {
				b.Write(z.Text())
			}
		}
	}
}

func isHiddenTag(name []byte) bool {
	switch string(bytes.ToLower(name)) {
	case "script", "style", "head", "title":
		return true
	}
	return false
}

// previewText makes the preview of a text: valid UTF-8, control
// characters dropped, white space collapsed and trimmed, at most 256
// characters.
func previewText(s string) string {
	s = strings.ToValidUTF8(s, "")
	var b strings.Builder
	n := 0
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		if unicode.IsControl(r) || r == utf8.RuneError {
			continue
		}
		if space {
			if n+1 >= previewMaxChars {
				break
			}
			b.WriteByte(' ')
			n++
			space = false
		}
		b.WriteRune(r)
		if n++; n >= previewMaxChars {
			break
		}
	}
	return b.String()
}

// writePreview writes PREVIEW (RFC 8970 3.1: "PREVIEW" SP nstring; always
// a string here, "" when there is no text to show).
func (w *FetchResponseWriter) writePreview(text string) {
	w.sep()
	w.e.Atom("PREVIEW ").String(text)
}
