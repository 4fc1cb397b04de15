package twilio

import (
	"cmp"
	"context"
	"fmt"
	"hash/fnv"
	"net/http"
	"net/url"
	"strconv"
	"sync"

	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
)

// maxParts bounds the part count a status URL may claim; a long text is
// split into far fewer (BonyChat's 7,000 characters / 1,600 per part).
const maxParts = 100

// callbackStatus maps Twilio's MessageStatus to the protocol's status
// values. States not listed (queued, sending, accepted, scheduled,
// receiving, received, canceled, partially_delivered, …) are acknowledged
// and ignored.
var callbackStatus = map[string]string{
	"sent":        schema.StatusSent,
	"delivered":   schema.StatusDelivered,
	"read":        schema.StatusRead,
	"failed":      schema.StatusFailed,
	"undelivered": schema.StatusFailed,
}

// handleStatus serves POST /twilio/{channelId}/status?mid=…[&part=i&parts=n],
// the StatusCallback Send sets on every message. The query is part of the
// signed URL, so mid, part and parts are as this server wrote them.
//
// Answers: 200 with an empty body once the status is taken or ignored
// (Twilio reads nothing from it); 400 for a URL or recipient this server
// never produces; 403 for a bad signature; 503 when the status or opt-out
// could not be stored, so Twilio retries.
func (p *Provider) handleStatus(w http.ResponseWriter, r *http.Request) {
	form, ok := p.readSignedForm(w, r)
	if !ok {
		return
	}
	query := r.URL.Query()
	mid := query.Get("mid")
	if mid == "" || len(mid) > schema.MaxMID {
		providers.WriteError(w, http.StatusBadRequest, "the mid query parameter is missing or too long")
		return
	}
	part, parts, err := partOf(query)
	if err != nil {
		providers.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	raw := form.Get("MessageStatus")
	value, reported := callbackStatus[raw]
	if !reported {
		w.WriteHeader(http.StatusOK)
		return
	}
	contact := stripWhatsApp(form.Get("To"))
	if !schema.IsE164(contact) {
		providers.WriteError(w, http.StatusBadRequest, "To must be an E.164 number (optionally whatsapp:-prefixed)")
		return
	}
	ctx := r.Context()
	code := form.Get("ErrorCode")
	if code == "21610" {
		// Twilio refused the message because the contact replied STOP.
		if err := p.setOptOut(ctx, contact, true); err != nil {
			p.unavailable(w, mid, "the opt-out could not be recorded", err)
			return
		}
	}
	reason := ""
	if value == schema.StatusFailed {
		reason = p.failureReason(code, contact, part, parts)
	}
	if parts > 1 {
		value, reason, err = p.wholeMessageStatus(ctx, mid, part, parts, value, reason)
		if err != nil {
			p.unavailable(w, mid, "the part's status could not be stored", err)
			return
		}
	}
	if value != "" {
		if err := p.deps.Statuses.PostStatus(ctx, contact, mid, value, reason); err != nil {
			p.unavailable(w, mid, "the status could not be stored", err)
			return
		}
	}
	w.WriteHeader(http.StatusOK)
}

func (p *Provider) unavailable(w http.ResponseWriter, mid, what string, err error) {
	p.deps.Log.Error("twilio status callback not taken; Twilio retries", "channel", p.deps.ChannelID, "mid", mid,
		"problem", what, "error", err.Error())
	providers.WriteError(w, http.StatusServiceUnavailable, what+"; try again")
}

// partOf reads part and parts from the status URL: both absent for a
// message sent whole (parts = 1).
func partOf(q url.Values) (part, parts int, err error) {
	if !q.Has("parts") && !q.Has("part") {
		return 0, 1, nil
	}
	parts, errParts := strconv.Atoi(q.Get("parts"))
	part, errPart := strconv.Atoi(q.Get("part"))
	if errParts != nil || errPart != nil || parts < 1 || parts > maxParts || part < 0 || part >= parts {
		return 0, 0, fmt.Errorf("part and parts must be numbers with 0 <= part < parts <= %d", maxParts)
	}
	return part, parts, nil
}

// failureReason words a failed callback's ErrorCode for the agent, as the
// /message answer words it, naming the part of a message sent in parts.
func (p *Provider) failureReason(code, contact string, part, parts int) string {
	reason := callbackReason(code, contact)
	if settingsCode(code) {
		reason = providers.SettingsRefusal(p.deps.ChannelID, reason)
	}
	if parts > 1 {
		reason = fmt.Sprintf("part %d of %d: %s", part+1, parts, reason)
	}
	return reason
}

// partRank orders a part's receipts; failed is handled apart.
var partRank = map[string]int{schema.StatusSent: 1, schema.StatusDelivered: 2, schema.StatusRead: 3}

// mergePart moves one part's status forward only, like the message's own:
// failed is final, and a delivered or read part cannot fail any more.
func mergePart(old, next string) string {
	switch {
	case old == schema.StatusFailed:
		return old
	case next == schema.StatusFailed:
		if partRank[old] >= partRank[schema.StatusDelivered] {
			return old
		}
		return next
	case partRank[next] > partRank[old]:
		return next
	}
	return old
}

// partLocks serialise the read-modify-write of one message's part record
// (callbacks for different parts arrive concurrently), striped by mId.
var partLocks [64]sync.Mutex

func partLock(channel, mid string) *sync.Mutex {
	h := fnv.New32a()
	_, _ = h.Write([]byte(channel + "|" + mid))
	return &partLocks[h.Sum32()%uint32(len(partLocks))]
}

// wholeMessageStatus records one part's status (record nsPartStatus, key
// channel|mId, a JSON map part → status, plus the first failure's reason) and
// returns what the message as a whole has reached, "" for nothing to
// report yet, with the reason of a failure: failed as soon as a part
// fails; otherwise sent, delivered or read once every part has reached it.
//
// The record is written before the report, and a message with a failed
// part reports failed again at every later callback of any part: the
// failure's own report may have been refused (503), and Twilio does not
// retry a status callback by default. The status sink takes it once.
func (p *Provider) wholeMessageStatus(ctx context.Context, mid string, part, parts int, value, reason string) (string, string, error) {
	mu := partLock(p.deps.ChannelID, mid)
	mu.Lock()
	defer mu.Unlock()
	state := map[string]string{}
	key := p.deps.ChannelID + "|" + mid // another channel's callbacks never touch it
	if _, err := p.getJSON(ctx, nsPartStatus, key, &state); err != nil {
		return "", "", err
	}
	this := strconv.Itoa(part)
	state[this] = mergePart(state[this], value)
	if state[this] == schema.StatusFailed && state[failedReasonKey] == "" {
		state[failedReasonKey] = reason
	}
	if err := p.putJSON(ctx, nsPartStatus, key, state, providers.MessageRecordExpiry()); err != nil {
		return "", "", err
	}
	whole := schema.StatusRead
	for i := range parts {
		s := state[strconv.Itoa(i)]
		switch {
		case s == schema.StatusFailed:
			// A record from before the reason was kept has none.
			return s, cmp.Or(state[failedReasonKey], fmt.Sprintf("part %d of %d failed", i+1, parts)), nil
		case s == "":
			whole = "" // a part not heard from yet; a later one may have failed
		case whole != "" && partRank[s] < partRank[whole]:
			whole = s
		}
	}
	return whole, "", nil
}

// failedReasonKey holds, in a message's part record, the reason of its
// first failed part (the part keys are numbers).
const failedReasonKey = "failed_reason"
