package main

import (
	"sort"
	"strings"

	"tern/imapd/wire"
)

// THREAD (RFC 5256 3): ORDEREDSUBJECT and REFERENCES.

// threadNode is a container of the REFERENCES algorithm: a message, or a
// dummy (msg nil) standing for a message referenced but not present.
type threadNode struct {
	msg      *sortMsg
	parent   *threadNode
	children []*threadNode
}

// Thread runs THREAD or UID THREAD and returns the threads as RFC 5256 4
// writes them ("(1 2)(3 (4)(5))").
func (s *session) Thread(uid bool, req *wire.ThreadRequest) (_ string, err error) {
	v := s.sel
	defer v.endCommand(&err)
	msgs, err := s.matching(req.Criteria, true, false)
	if err != nil {
		return "", err
	}
	var roots []*threadNode
	if req.Algorithm == "ORDEREDSUBJECT" {
		roots = orderedSubject(msgs)
	} else {
		roots = references(msgs)
	}
	var b strings.Builder
	for _, r := range roots {
		b.WriteByte('(')
		writeThread(&b, r, uid)
		b.WriteByte(')')
	}
	return b.String(), nil
}

// writeThread writes a node and its descendants: a chain of only
// children as "1 2 3", several children each in parentheses (RFC 5256 4).
func writeThread(b *strings.Builder, n *threadNode, uid bool) {
	sep := false
	if n.msg != nil {
		num := n.msg.seq
		if uid {
			num = n.msg.uid
		}
		b.WriteString(itoa(num))
		sep = true
	}
	switch len(n.children) {
	case 0:
	case 1:
		if sep {
			b.WriteByte(' ')
		}
		writeThread(b, n.children[0], uid)
	default:
		if sep {
			b.WriteByte(' ')
		}
		for _, c := range n.children {
			b.WriteByte('(')
			writeThread(b, c, uid)
			b.WriteByte(')')
		}
	}
}

// before orders two messages by sent date, then by mailbox order (RFC 5256
// 2.2, 3).
func before(a, b *sortMsg) bool {
	if c := a.sent.Compare(b.sent); c != 0 {
		return c < 0
	}
	return a.seq < b.seq
}

// orderedSubject: RFC 5256 3, ORDEREDSUBJECT. Messages sorted by base
// subject, then sent date, are grouped by base subject; the first of each
// group is the parent of the others; the threads are sorted by the sent
// date of their first message.
func orderedSubject(msgs []sortMsg) []*threadNode {
	sortMessages(msgs, []wire.SortKey{{Key: "SUBJECT"}, {Key: "DATE"}})
	var roots []*threadNode
	var cur *threadNode
	for i := range msgs {
		m := &msgs[i]
		if cur != nil && cur.msg.info.subject == m.info.subject {
			cur.children = append(cur.children, &threadNode{msg: m, parent: cur})
			continue
		}
		cur = &threadNode{msg: m}
		roots = append(roots, cur)
	}
	sort.SliceStable(roots, func(i, j int) bool { return before(roots[i].msg, roots[j].msg) })
	return roots
}

// isAncestor says whether a is b or one of b's ancestors.
func isAncestor(a, b *threadNode) bool {
	for n := b; n != nil; n = n.parent {
		if n == a {
			return true
		}
	}
	return false
}

func (n *threadNode) unlink() {
	if p := n.parent; p != nil {
		for i, c := range p.children {
			if c == n {
				p.children = append(p.children[:i:i], p.children[i+1:]...)
				break
			}
		}
		n.parent = nil
	}
}

func (n *threadNode) adopt(c *threadNode) {
	c.unlink()
	c.parent = n
	n.children = append(n.children, c)
}

// sortDate is the message a container sorts by: itself, or for a dummy
// its first child (RFC 5256 3, REFERENCES steps 4 and 6).
func (n *threadNode) sortMsg() *sortMsg {
	for n != nil && n.msg == nil {
		if len(n.children) == 0 {
			return nil
		}
		n = n.children[0]
	}
	if n == nil {
		return nil
	}
	return n.msg
}

func sortSiblings(nodes []*threadNode) {
	sort.SliceStable(nodes, func(i, j int) bool {
		a, b := nodes[i].sortMsg(), nodes[j].sortMsg()
		if a == nil || b == nil {
			return a != nil
		}
		return before(a, b)
	})
}

// references: RFC 5256 3, REFERENCES, steps 1 to 6.
func references(msgs []sortMsg) []*threadNode {
	byID := make(map[string]*threadNode)
	var all []*threadNode
	container := func(id string) *threadNode {
		n := byID[id]
		if n == nil {
			n = &threadNode{}
			byID[id] = n
			all = append(all, n)
		}
		return n
	}
	// Step 1.
	for i := range msgs {
		m := &msgs[i]
		var self *threadNode
		if id := m.info.messageID; id != "" {
			if n := byID[id]; n == nil || n.msg == nil {
				self = container(id)
			}
		}
		if self == nil {
			// No Message-ID, or a duplicate: a unique one (step 1).
			self = &threadNode{}
			all = append(all, self)
		}
		self.msg = m
		// 1.A: link the references in order, parent before child,
		// keeping existing parents and making no loops.
		var prev *threadNode
		for _, ref := range m.info.references {
			n := container(ref)
			if prev != nil && n.parent == nil && !isAncestor(n, prev) {
				prev.adopt(n)
			}
			prev = n
		}
		// 1.B: the last reference is the message's parent, replacing
		// any parent it had, unless that makes a loop.
		if prev != nil && isAncestor(self, prev) {
			prev = nil
		}
		if prev != nil {
			prev.adopt(self)
		} else {
			self.unlink()
		}
	}
	// Step 2: the root set.
	root := &threadNode{}
	for _, n := range all {
		if n.parent == nil {
			root.children = append(root.children, n)
			n.parent = root
		}
	}
	// Step 3: prune dummies.
	prune(root)
	// Step 4: sort the top level by sent date (dummies by their first
	// child, their children sorted first).
	for _, n := range root.children {
		if n.msg == nil {
			sortSiblings(n.children)
		}
	}
	sortSiblings(root.children)
	// Step 5: gather the top-level messages of the same base subject.
	subjectOf := func(n *threadNode) *sortMsg {
		if n.msg != nil {
			return n.msg
		}
		if len(n.children) > 0 {
			return n.children[0].msg
		}
		return nil
	}
	table := make(map[string]*threadNode)
	for _, n := range root.children {
		m := subjectOf(n)
		if m == nil || m.info.subject == "" {
			continue
		}
		old := table[m.info.subject]
		if old == nil ||
			(n.msg == nil && old.msg != nil) ||
			(old.msg != nil && old.msg.info.replyOrFwd && n.msg != nil && !n.msg.info.replyOrFwd) {
			table[m.info.subject] = n
		}
	}
	tops := append([]*threadNode{}, root.children...)
	for _, n := range tops {
		if n.parent != root {
			continue // already merged into another thread
		}
		m := subjectOf(n)
		if m == nil || m.info.subject == "" {
			continue
		}
		other := table[m.info.subject]
		if other == nil || other == n {
			continue
		}
		switch {
		case n.msg == nil && other.msg == nil:
			for len(n.children) > 0 {
				other.adopt(n.children[0])
			}
			n.unlink()
		case other.msg == nil:
			other.adopt(n)
		case n.msg == nil:
			n.adopt(other)
			table[m.info.subject] = n
		case !other.msg.info.replyOrFwd && n.msg.info.replyOrFwd:
			other.adopt(n)
		default:
			d := &threadNode{}
			at := indexOf(root.children, n)
			root.children[at] = d
			d.parent = root
			n.parent = nil
			other.unlink()
			d.adopt(other)
			d.adopt(n)
			table[m.info.subject] = d
		}
	}
	// Step 6: sort every set of siblings by sent date.
	sortTree(root)
	for _, n := range root.children {
		n.parent = nil
	}
	return root.children
}

func indexOf(nodes []*threadNode, n *threadNode) int {
	for i, c := range nodes {
		if c == n {
			return i
		}
	}
	return -1
}

// prune: RFC 5256 3, REFERENCES step 3. A dummy without children goes;
// a dummy with children goes and its children take its place, except
// that several children do not move up to the top level.
func prune(n *threadNode) {
	for i := 0; i < len(n.children); {
		c := n.children[i]
		prune(c)
		if c.msg != nil {
			i++
			continue
		}
		if len(c.children) == 0 {
			n.children = append(n.children[:i], n.children[i+1:]...)
			continue
		}
		if n.parent == nil && n.msg == nil && len(c.children) > 1 {
			// n is the root: the dummy stays.
			i++
			continue
		}
		kids := c.children
		for _, k := range kids {
			k.parent = n
		}
		rest := append([]*threadNode{}, n.children[i+1:]...)
		n.children = append(append(n.children[:i], kids...), rest...)
		i += len(kids)
	}
}

func sortTree(n *threadNode) {
	for _, c := range n.children {
		sortTree(c)
	}
	sortSiblings(n.children)
}
