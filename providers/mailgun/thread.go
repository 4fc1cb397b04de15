package mailgun

// Threading: each contact has one ongoing thread per channel, kept in
// Records (namespace "mailgun-thread", key = channel ID "|" contact ID; two
// channels writing to one address are two conversations) as JSON:
//
//	Subject               the thread's subject without "Re:"/"Fwd:" prefixes
//	LastInboundMessageID  the contact's latest Message-Id, "<…>"
//	References            the thread's Message-Ids, "<…>", oldest first: the
//	                      contact's and ours; at most maxReferences, keeping
//	                      the first (the thread's root) and the latest
//	ReplyAddress          the reply address whose mapping is stored
//
// Every outbound e-mail then carries Reply-To: the contact's reply address,
// In-Reply-To: the latest inbound Message-Id, References: the thread's ids,
// and the subject "Re: <Subject>" (or the configured subject while the
// contact has no thread). Its own Message-Id is added to References after
// the send, so a reply to it chains to the same thread.
//
// Reply addresses: reply+<token>@<domain>, where token is the first 15
// bytes of SHA-256("mailgun-reply\x00" + contactID) in lower-case base32
// without padding (24 characters of a-z and 2-7). A contact ID cannot be
// put in the local part as it is: its capitals are significant, and mail
// systems fold a local part's case; a case-proof reversible encoding of a
// 50-character ID would not fit a local part's 64 characters. So the
// token is looked up: token → contact ID is stored (namespace
// "mailgun-reply") before an address is used, and ContactForReplyAddress
// reads it back (checking that the stored ID hashes to the token).
//
// Updates are serialized per Provider (read-modify-write of one record);
// replicas sharing one store may lose a concurrent update of the same
// contact's thread, which costs threading, never a message.

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/bonychat/bonychat-adapter/schema"
)

const (
	nsThread      = "mailgun-thread"
	nsReply       = "mailgun-reply"
	maxReferences = 20
	replyPrefix   = "reply+"
	maxSubjectLen = 250 // runes kept of a stored subject
)

// thread is one contact's thread record.
type threadRecord struct {
	Subject              string   `json:"subject,omitempty"`
	LastInboundMessageID string   `json:"lastInboundMessageId,omitempty"`
	References           []string `json:"references,omitempty"`
	ReplyAddress         string   `json:"replyAddress,omitempty"`
}

var tokenEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// replyToken is the local-part token of a contact's reply address.
func replyToken(contactID string) string {
	sum := sha256.Sum256([]byte("mailgun-reply\x00" + contactID))
	return tokenEncoding.EncodeToString(sum[:15])
}

// ReplyAddress is the contact's reply address on the channel's domain,
// reply+<token>@<domain>. It is stable for a contact; Send and
// RecordInbound store its mapping before it is handed out.
func (p *Provider) ReplyAddress(contactID string) string {
	return replyPrefix + replyToken(contactID) + "@" + strings.ToLower(p.cfg.Domain)
}

// ContactForReplyAddress returns the contact whose reply address addr is
// (any letter case, display name allowed): found=false for an address that
// is not one of this channel's reply addresses or has no stored mapping.
// A failing store, or a record that does not match its token, is an error.
func (p *Provider) ContactForReplyAddress(ctx context.Context, addr string) (string, bool, error) {
	addr = strings.ToLower(strings.TrimSpace(addr))
	if i := strings.LastIndexByte(addr, '<'); i >= 0 && strings.HasSuffix(addr, ">") {
		addr = addr[i+1 : len(addr)-1]
	}
	local, domain, ok := strings.Cut(addr, "@")
	if !ok || domain != strings.ToLower(p.cfg.Domain) {
		return "", false, nil
	}
	token, ok := strings.CutPrefix(local, replyPrefix)
	if !ok || len(token) != 24 || strings.Trim(token, "abcdefghijklmnopqrstuvwxyz234567") != "" {
		return "", false, nil
	}
	if p.deps.Records == nil {
		return "", false, errors.New("mailgun: reply addresses need a record store")
	}
	v, found, err := p.deps.Records.Get(ctx, nsReply, token)
	if err != nil {
		return "", false, fmt.Errorf("mailgun: reading reply address %q: %w", token, err)
	}
	if !found || len(v) == 0 {
		return "", false, nil
	}
	if replyToken(string(v)) != token {
		return "", false, fmt.Errorf("mailgun: reply record %q holds a contact that does not map back to it", token)
	}
	return string(v), true, nil
}

// ensureReplyAddress stores the contact's reply-address mapping unless the
// thread says it is stored, and notes it in the thread (the caller saves).
func (p *Provider) ensureReplyAddress(ctx context.Context, contactID string, t *threadRecord) error {
	addr := p.ReplyAddress(contactID)
	if t.ReplyAddress == addr {
		return nil
	}
	if p.deps.Records == nil {
		return errors.New("mailgun: reply addresses need a record store")
	}
	if err := p.deps.Records.Put(ctx, nsReply, replyToken(contactID), []byte(contactID)); err != nil {
		return fmt.Errorf("mailgun: storing reply address: %w", err)
	}
	t.ReplyAddress = addr
	return nil
}

// threadKey names the contact's thread on this channel.
func (p *Provider) threadKey(contactID string) string { return p.deps.ChannelID + "|" + contactID }

func (p *Provider) loadThread(ctx context.Context, contactID string) (threadRecord, error) {
	var t threadRecord
	if p.deps.Records == nil {
		return t, errors.New("mailgun: threads need a record store")
	}
	v, found, err := p.deps.Records.Get(ctx, nsThread, p.threadKey(contactID))
	if err != nil {
		return t, fmt.Errorf("mailgun: reading thread of %q: %w", contactID, err)
	}
	if !found || len(v) == 0 {
		return t, nil
	}
	if err := json.Unmarshal(v, &t); err != nil {
		// A damaged record costs threading, not the message: start anew.
		p.threadWarn("mailgun: thread record unreadable; starting a new thread", "error", err.Error())
		return threadRecord{}, nil
	}
	return t, nil
}

func (p *Provider) saveThread(ctx context.Context, contactID string, t threadRecord) error {
	v, err := json.Marshal(t)
	if err != nil {
		return err
	}
	if err := p.deps.Records.Put(ctx, nsThread, p.threadKey(contactID), v); err != nil {
		return fmt.Errorf("mailgun: storing thread of %q: %w", contactID, err)
	}
	return nil
}

// RecordInbound records an e-mail from the contact: its Message-Id becomes
// the one our next e-mail replies to, its references join the thread's,
// and its subject (without "Re:"/"Fwd:" prefixes) becomes the thread's
// when there is no ongoing thread. A message that refers to none of the
// thread's e-mails and has another subject starts a new thread.
func (p *Provider) RecordInbound(ctx context.Context, contactID, subject, messageID string, references []string) error {
	p.threadMu.Lock()
	defer p.threadMu.Unlock()
	t, err := p.loadThread(ctx, contactID)
	if err != nil {
		return err
	}
	refs := threadIDs(references...)
	id := ""
	if ids := threadIDs(messageID); len(ids) > 0 {
		id = ids[0]
	}
	subj := stripSubject(subject)
	if t.Subject != "" && subj != "" && !strings.EqualFold(subj, t.Subject) && !threadSharesAny(refs, t.References) {
		t.Subject, t.References = "", nil // a new conversation
	}
	if t.Subject == "" {
		t.Subject = subj
	}
	t.References = threadAppendRefs(t.References, refs...)
	if id != "" {
		t.LastInboundMessageID = id
		t.References = threadAppendRefs(t.References, id)
	}
	if err := p.ensureReplyAddress(ctx, contactID, &t); err != nil {
		return err
	}
	return p.saveThread(ctx, contactID, t)
}

// recordOutbound adds our sent e-mail's Message-Id (without brackets) to
// the thread, and the subject it was sent with when the thread had none.
func (p *Provider) recordOutbound(ctx context.Context, contactID, msgID, sentSubject string) error {
	p.threadMu.Lock()
	defer p.threadMu.Unlock()
	t, err := p.loadThread(ctx, contactID)
	if err != nil {
		return err
	}
	if t.Subject == "" {
		t.Subject = stripSubject(sentSubject)
	}
	t.References = threadAppendRefs(t.References, "<"+msgID+">")
	return p.saveThread(ctx, contactID, t)
}

// sentInThread reports whether msgID is one of the e-mails the contact's
// thread records as sent (the most recent maxReferences of them).
func (p *Provider) sentInThread(ctx context.Context, contactID, msgID string) (bool, error) {
	t, err := p.loadThread(ctx, contactID)
	if err != nil {
		return false, err
	}
	return slices.Contains(t.References, "<"+strings.Trim(strings.TrimSpace(msgID), "<>")+">"), nil
}

// subject is the subject of an outbound e-mail in thread t.
func (p *Provider) threadSubject(t threadRecord) string {
	if t.Subject == "" {
		return p.cfg.Subject
	}
	return "Re: " + t.Subject
}

// subjectPrefix is one reply/forward marker: Re:, Fwd:, Fw:, also as
// "Re[2]:" or "RE :".
var subjectPrefix = regexp.MustCompile(`(?i)^\s*(re|fwd?)\s*(\[\d+\])?\s*:\s*`)

// stripSubject is a subject without reply/forward prefixes, on one line.
func stripSubject(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	for {
		loc := subjectPrefix.FindStringIndex(s)
		if loc == nil || loc[1] == 0 {
			break
		}
		s = s[loc[1]:]
	}
	s = strings.TrimSpace(s)
	return schema.Truncate(s, maxSubjectLen)
}

// msgIDPattern is one Message-Id's content: no whitespace, brackets or
// control characters, an @ inside.
var msgIDPattern = regexp.MustCompile(`^[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+$`)

// threadIDs reads Message-Ids from header values (each may hold several,
// bracketed, separated by whitespace or commas) as "<…>"; anything that is
// not a plausible id is dropped, so no header can be injected.
func threadIDs(values ...string) []string {
	var out []string
	for _, v := range values {
		for _, f := range strings.FieldsFunc(v, func(r rune) bool {
			return r == ' ' || r == '\t' || r == '\r' || r == '\n' || r == ',' || r == '<' || r == '>'
		}) {
			if len(f) <= 250 && msgIDPattern.MatchString(f) {
				out = append(out, "<"+f+">")
			}
		}
	}
	return out
}

// threadAppendRefs appends ids not yet in refs, then keeps the first and the
// latest when there are more than maxReferences.
func threadAppendRefs(refs []string, ids ...string) []string {
	for _, id := range ids {
		dup := false
		for _, r := range refs {
			if r == id {
				dup = true
				break
			}
		}
		if !dup {
			refs = append(refs, id)
		}
	}
	if len(refs) > maxReferences {
		refs = append([]string{refs[0]}, refs[len(refs)-maxReferences+1:]...)
	}
	return refs
}

func threadSharesAny(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}

func (p *Provider) threadWarn(msg string, args ...any) {
	if p.deps.Log != nil {
		p.deps.Log.Warn(msg, args...)
	}
}
