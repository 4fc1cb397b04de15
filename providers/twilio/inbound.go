package twilio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
)

// emptyTwiML is the answer to an inbound webhook: no reply. It must go out
// as text/xml; Twilio texts a text/plain body back to the contact.
const emptyTwiML = `<?xml version="1.0" encoding="UTF-8"?><Response/>`

// Bounds of one inbound webhook. Twilio waits 15 s in all for the answer:
// a webhook waits at most arrivalWait for the contact's one before it
// (ArrivalOrder), then downloads every item at once, within mediaBudget
// together.
const (
	arrivalWait = 3 * time.Second
	mediaBudget = 10 * time.Second
	// maxMedia is more than Twilio ever sends (10 per MMS); NumMedia beyond
	// it is not believed.
	maxMedia = 10
)

// messageSIDPattern keeps mIds derived from the SID (SID + "-location")
// within the protocol's 50 characters. Real SIDs are 34 characters.
var messageSIDPattern = regexp.MustCompile(`^[A-Za-z0-9]{1,40}$`)

// handleInbound serves POST /twilio/{channelId}/inbound, the number's "A
// message comes in" webhook: verify, turn the form into events, store them
// through the ingester (deduplicated by MessageSid), then answer empty TwiML.
func (p *Provider) handleInbound(w http.ResponseWriter, r *http.Request) {
	form, ok := p.readSignedForm(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	sid := form.Get("MessageSid")
	if !messageSIDPattern.MatchString(sid) {
		providers.WriteError(w, http.StatusBadRequest, "MessageSid is missing or malformed")
		return
	}
	contact := stripWhatsApp(form.Get("From"))
	if !schema.IsE164(contact) {
		p.deps.Log.Warn("twilio inbound from an address that is not an E.164 number; not posted",
			"channel", p.deps.ChannelID, "message_sid", sid)
		providers.WriteError(w, http.StatusBadRequest, "From must be an E.164 number (optionally whatsapp:-prefixed)")
		return
	}
	// Stored in arrival order: a message whose media are still downloading
	// holds back the contact's later ones (Twilio posts each separately),
	// for a while only: Twilio gives up on an answer after 15 s and does
	// not post the message again.
	defer p.arrivals.Enter(ctx, contact, arrivalWait)()
	if p.alreadyTaken(ctx, sid) {
		// Twilio's retry or fallback delivery of a message already stored:
		// answered at once, without downloading its media again.
		p.deps.Log.Info("twilio inbound redelivered; already taken", "channel", p.deps.ChannelID, "message_sid", sid)
		writeTwiML(w)
		return
	}
	events, media, err := p.inboundEvents(ctx, sid, contact, form)
	if err != nil {
		p.deps.Log.Error("twilio inbound not taken; Twilio may redeliver", "channel", p.deps.ChannelID,
			"message_sid", sid, "error", err.Error())
		providers.WriteError(w, http.StatusServiceUnavailable, "the message could not be stored; try again")
		return
	}
	if err := p.applyOptOut(ctx, contact, form); err != nil {
		p.deps.Log.Error("twilio opt-out keyword not recorded; Twilio may redeliver", "channel", p.deps.ChannelID,
			"message_sid", sid, "error", err.Error())
		// Nothing links the media saved for it: a redelivery saves its own.
		providers.DiscardMedia(ctx, p.deps.Log, p.deps.Media, media)
		providers.WriteError(w, http.StatusServiceUnavailable, "the opt-out could not be recorded; try again")
		return
	}
	if len(events) == 0 {
		// An empty SMS, or a WhatsApp message kind Twilio passes without a
		// body, media or location: nothing BonyChat could show.
		p.deps.Log.Info("twilio inbound without content; nothing posted", "channel", p.deps.ChannelID,
			"message_sid", sid, "message_type", form.Get("MessageType"))
		writeTwiML(w)
		return
	}
	// Ingest owns the media from here: it removes them if it does not
	// store the events.
	in := providers.Inbound{DedupeKey: sid, ContactID: contact, Contact: inboundContact(contact, form), Events: events,
		Media: media}
	if _, err := p.deps.Ingest.Ingest(ctx, in); err != nil {
		status, msg := providers.IngestStatus(err)
		p.deps.Log.Warn("twilio inbound not taken", "channel", p.deps.ChannelID, "message_sid", sid,
			"status", status, "error", err.Error())
		providers.WriteError(w, status, msg)
		return
	}
	writeTwiML(w)
}

// alreadyTaken reports whether the ingester took this MessageSid before
// (its dedupe key). The ingester's dedupe would drop a redelivery anyway,
// but only after its media were downloaded and stored again. No answer
// (an ingester that cannot tell, a store error): the message goes the full
// way.
func (p *Provider) alreadyTaken(ctx context.Context, sid string) bool {
	d, ok := p.deps.Ingest.(providers.InboundDedupe)
	if !ok {
		return false
	}
	taken, err := d.Taken(ctx, sid)
	if err != nil {
		p.deps.Log.Warn("cannot check for a redelivered twilio inbound", "channel", p.deps.ChannelID,
			"message_sid", sid, "error", err.Error())
	}
	return err == nil && taken
}

func writeTwiML(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(emptyTwiML))
}

// stripWhatsApp is an address without the "whatsapp:" channel prefix.
func stripWhatsApp(addr string) string {
	addr = strings.TrimSpace(addr)
	if len(addr) >= len("whatsapp:") && strings.EqualFold(addr[:len("whatsapp:")], "whatsapp:") {
		return addr[len("whatsapp:"):]
	}
	return addr
}

// inboundContact is the profile BonyChat uses when it creates the contact:
// the WhatsApp profile name split at its first space, the number, and the
// country Twilio looked up. The ingester cuts or drops what does not fit.
func inboundContact(number string, form url.Values) *schema.Contact {
	c := &schema.Contact{Phone: number, CountryCode: strings.ToUpper(strings.TrimSpace(form.Get("FromCountry")))}
	if name := strings.TrimSpace(form.Get("ProfileName")); name != "" {
		given, family, _ := strings.Cut(name, " ")
		c.FirstName, c.LastName = given, strings.TrimSpace(family)
	}
	return c
}

// inboundEvents turns the form into message events, in the order the
// contact would read them: the text (mId = MessageSid), a second text for a
// WhatsApp button whose text differs from the body (SID-button), each media
// item (SID-1, SID-2, …), then a shared location (the SID when there is no
// text, else SID-location); and the links of the media it saved for them.
// An error means something on this server failed (the record or media
// store): the webhook is answered 503, and nothing is left saved.
func (p *Provider) inboundEvents(ctx context.Context, sid, contact string, form url.Values) ([]schema.Event, []string, error) {
	ts := p.now().UnixMilli()
	msg := func(mid string, m *schema.Message) schema.Event {
		return schema.Event{Type: schema.EventMessage, MID: mid, Timestamp: ts, Message: m}
	}
	var events []schema.Event

	body, button := form.Get("Body"), form.Get("ButtonText")
	loc, hasLoc := p.inboundLocation(sid, form)
	if hasLoc && body != "" && (body == form.Get("Address") || body == form.Get("Label")) {
		body = "" // the place's name or address repeated as the body
	}
	text := body
	if text == "" {
		text = button // a WhatsApp button reply: its text is what was chosen
	}
	if text != "" {
		choice, err := p.quickReplyChoice(ctx, contact, text)
		if err != nil {
			return nil, nil, err
		}
		events = append(events, msg(sid, schema.TextMessage(choice)))
	}
	if body != "" && button != "" && button != body {
		events = append(events, msg(sid+"-button", schema.TextMessage(button)))
	}

	media, saved, err := p.inboundMedia(ctx, sid, form)
	if err != nil {
		return nil, nil, err
	}
	for i, m := range media {
		events = append(events, msg(schema.SuffixID(sid, i+1), m))
	}

	if hasLoc {
		mid := sid
		if text != "" {
			mid = sid + "-location"
		}
		events = append(events, msg(mid, loc))
	}
	return events, saved, nil
}

// inboundLocation reads a WhatsApp shared location: Latitude/Longitude,
// with the address from Address, else the place's Label. Coordinates that
// are not numbers in range are logged and left out.
func (p *Provider) inboundLocation(sid string, form url.Values) (*schema.Message, bool) {
	rawLat, rawLon := strings.TrimSpace(form.Get("Latitude")), strings.TrimSpace(form.Get("Longitude"))
	if rawLat == "" && rawLon == "" {
		return nil, false
	}
	lat, errLat := strconv.ParseFloat(rawLat, 64)
	lon, errLon := strconv.ParseFloat(rawLon, 64)
	if errLat != nil || errLon != nil || math.IsNaN(lat) || math.IsNaN(lon) ||
		math.Abs(lat) > 90 || math.Abs(lon) > 180 {
		p.deps.Log.Warn("twilio inbound location with unusable coordinates left out", "channel", p.deps.ChannelID,
			"message_sid", sid, "latitude", rawLat, "longitude", rawLon)
		return nil, false
	}
	m := &schema.Message{Type: schema.TypeLocation, Latitude: &lat, Longitude: &lon}
	address := strings.TrimSpace(form.Get("Address"))
	if address == "" {
		address = strings.TrimSpace(form.Get("Label"))
	}
	if address != "" {
		m.Address = &address
	}
	return m, true
}

// choicePattern is a reply naming an offered option by its number: "2",
// "2." or " 2 " (and "2)").
var choicePattern = regexp.MustCompile(`^\s*([0-9]{1,2})\s*[.)]?\s*$`)

// quickReplyChoice maps a reply to the quick-reply options last offered to
// the contact (remembered by Send for quickReplyTTL): a number in range, or
// an option's text in any case, becomes that option's text. Anything else,
// or no options (or expired ones), leaves the text as it is. The options
// stay remembered after a match, so the contact may answer again until
// they expire or the next quick reply replaces them.
func (p *Provider) quickReplyChoice(ctx context.Context, contact, text string) (string, error) {
	raw, found, err := p.deps.Records.Get(ctx, nsQuickReply, p.quickReplyKey(contact))
	if err != nil {
		return "", fmt.Errorf("reading the quick-reply options: %w", err)
	}
	if !found || len(raw) == 0 {
		return text, nil
	}
	var memo quickReplyMemo
	if err := json.Unmarshal(raw, &memo); err != nil {
		// A broken record must not block the contact's messages.
		p.deps.Log.Warn("twilio quick-reply record unreadable; reply passed as sent", "channel", p.deps.ChannelID,
			"error", err.Error())
		return text, nil
	}
	if len(memo.Options) == 0 || !p.now().Before(memo.Expires) {
		return text, nil
	}
	if m := choicePattern.FindStringSubmatch(text); m != nil {
		if n, _ := strconv.Atoi(m[1]); n >= 1 && n <= len(memo.Options) {
			return memo.Options[n-1], nil
		}
	}
	trimmed := strings.TrimSpace(text)
	for _, option := range memo.Options {
		if strings.EqualFold(strings.TrimSpace(option), trimmed) {
			return option, nil
		}
	}
	return text, nil
}

// inboundMedia downloads every MediaUrl{N} (Basic auth with the account's
// credentials when the URL is on Twilio's API host, see mediaRequest; the
// fetcher follows Twilio's redirect to its CDN without them), stores it in
// the media store and makes an attachment of this server's /media link.
//
// Decision: a media item that cannot be downloaded becomes a text event
// with a note (same mId the attachment would have had) instead of a 5xx.
// Twilio's default webhook retry policy does not reliably retry a 5xx and a
// fallback URL is often not set, so a 5xx could lose the whole message, its
// text included; the note keeps the text and tells the agent what is
// missing. The failure is logged. A media store that cannot save is this
// server's failure, like the ingester's: the webhook is answered 503, and
// the items saved before it are removed (nothing will link them). It
// returns the links of the items saved.
func (p *Provider) inboundMedia(ctx context.Context, sid string, form url.Values) ([]*schema.Message, []string, error) {
	n, _ := strconv.Atoi(strings.TrimSpace(form.Get("NumMedia")))
	n = min(max(n, 0), maxMedia)
	if n == 0 {
		return nil, nil, nil
	}
	type result struct {
		fetched *providers.Fetched
		err     error
	}
	results := make([]result, n)
	fetchCtx, cancel := context.WithTimeout(ctx, mediaBudget)
	defer cancel()
	var wg sync.WaitGroup
	for i := range n {
		mediaURL := form.Get("MediaUrl" + strconv.Itoa(i))
		if mediaURL == "" {
			results[i].err = errors.New("no MediaUrl" + strconv.Itoa(i) + " in the webhook")
			continue
		}
		req := p.mediaRequest(sid, mediaURL)
		wg.Go(func() {
			f, err := p.deps.Fetcher.Fetch(fetchCtx, req)
			results[i] = result{f, err}
		})
	}
	wg.Wait()

	out := make([]*schema.Message, n)
	var saved []string
	for i, res := range results {
		ctype := mediaType(form.Get("MediaContentType"+strconv.Itoa(i)), res.fetched)
		if res.err != nil {
			p.deps.Log.Warn("twilio media could not be downloaded; a note is posted instead", "channel", p.deps.ChannelID,
				"message_sid", sid, "media", i+1, "content_type", ctype, "error", res.err.Error())
			out[i] = schema.TextMessage(mediaNote(sid, i+1, ctype))
			continue
		}
		name := fmt.Sprintf("%s-%d%s", sid, i+1, extensionFor(ctype, res.fetched.FileName))
		link, err := p.deps.Media.Save(ctx, name, ctype, res.fetched.Body)
		if err != nil {
			providers.DiscardMedia(ctx, p.deps.Log, p.deps.Media, saved)
			return nil, nil, fmt.Errorf("saving media %d: %w", i+1, err)
		}
		saved = append(saved, link)
		out[i] = &schema.Message{Type: schema.TypeAttachment, Attachment: &schema.Attachment{
			Type: attachmentType(ctype), URL: link, MimeType: ctype, FileName: name}}
	}
	return out, saved, nil
}

// mediaRequest fetches a media URL with the account's credentials only
// when it is on Twilio's own API host: https://api.twilio.com, where
// Twilio keeps media, or the configured api_url (a proxy, a regional
// host). A URL elsewhere is fetched without them: the auth token opens the
// whole account and goes to Twilio alone. The fetcher keeps them from the
// redirect to Twilio's CDN, which serves the file from a signed URL.
func (p *Provider) mediaRequest(sid, mediaURL string) providers.FetchRequest {
	req := providers.FetchRequest{URL: mediaURL}
	u, err := url.Parse(mediaURL)
	if err != nil {
		return req // the fetcher refuses it with the reason
	}
	if !sameOrigin(u, DefaultAPIURL) && !sameOrigin(u, p.cfg.apiURL()) {
		p.deps.Log.Warn("twilio media URL is not on Twilio's API host; fetched without the account's credentials",
			"channel", p.deps.ChannelID, "message_sid", sid, "host", u.Host)
		return req
	}
	req.Username, req.Password = p.cfg.AccountSID, p.cfg.AuthToken.Reveal()
	return req
}

// sameOrigin: same scheme, host (any case) and port (the default one
// spelt out or not) as the base URL.
func sameOrigin(u *url.URL, base string) bool {
	b, err := url.Parse(base)
	if err != nil {
		return false
	}
	return strings.EqualFold(u.Scheme, b.Scheme) && strings.EqualFold(u.Hostname(), b.Hostname()) &&
		portOf(u) == portOf(b)
}

func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "https") {
		return "443"
	}
	return "80"
}

// mediaType is the type Twilio posted for the item (MediaContentType{N}),
// else what the download said, lower-cased and without parameters.
func mediaType(posted string, f *providers.Fetched) string {
	for _, candidate := range []string{posted, fetchedType(f)} {
		if mt, _, err := mime.ParseMediaType(candidate); err == nil && mt != "" {
			return strings.ToLower(mt)
		}
	}
	return "application/octet-stream"
}

func fetchedType(f *providers.Fetched) string {
	if f == nil {
		return ""
	}
	return f.ContentType
}

// attachmentType is BonyChat's attachment type for a media type.
func attachmentType(ctype string) string {
	major, _, _ := strings.Cut(ctype, "/")
	switch major {
	case "image", "video", "audio":
		return major
	}
	return "file"
}

// extensions are the file extensions of the types Twilio accepts for MMS
// and WhatsApp, fixed here so a name never depends on the host's MIME
// tables (Go's own table would name a JPEG ".jpeg" or ".jfif").
var extensions = map[string]string{
	"image/jpeg":                    ".jpg",
	"image/jpg":                     ".jpg",
	"image/pjpeg":                   ".jpg",
	"image/png":                     ".png",
	"image/gif":                     ".gif",
	"image/webp":                    ".webp",
	"image/bmp":                     ".bmp",
	"image/tiff":                    ".tiff",
	"image/heic":                    ".heic",
	"image/heif":                    ".heif",
	"image/svg+xml":                 ".svg",
	"video/mp4":                     ".mp4",
	"video/mpeg":                    ".mpeg",
	"video/3gpp":                    ".3gp",
	"video/3gpp2":                   ".3g2",
	"video/quicktime":               ".mov",
	"video/webm":                    ".webm",
	"video/h264":                    ".mp4",
	"video/x-msvideo":               ".avi",
	"audio/mpeg":                    ".mp3",
	"audio/mp3":                     ".mp3",
	"audio/mp4":                     ".m4a",
	"audio/aac":                     ".aac",
	"audio/ogg":                     ".ogg",
	"audio/opus":                    ".opus",
	"audio/amr":                     ".amr",
	"audio/3gpp":                    ".3gp",
	"audio/wav":                     ".wav",
	"audio/x-wav":                   ".wav",
	"audio/webm":                    ".weba",
	"audio/basic":                   ".au",
	"audio/l24":                     ".l24",
	"audio/vnd.wave":                ".wav",
	"text/vcard":                    ".vcf",
	"text/x-vcard":                  ".vcf",
	"text/directory":                ".vcf",
	"text/plain":                    ".txt",
	"text/csv":                      ".csv",
	"text/calendar":                 ".ics",
	"text/html":                     ".html",
	"text/rtf":                      ".rtf",
	"application/pdf":               ".pdf",
	"application/rtf":               ".rtf",
	"application/zip":               ".zip",
	"application/json":              ".json",
	"application/msword":            ".doc",
	"application/vnd.ms-excel":      ".xls",
	"application/vnd.ms-powerpoint": ".ppt",
	"application/vnd.apple.pkpass":  ".pkpass",
	"application/vnd.openxmlformats-officedocument.wordprocessingml.document":   ".docx",
	"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet":         ".xlsx",
	"application/vnd.openxmlformats-officedocument.presentationml.presentation": ".pptx",
}

var extensionPattern = regexp.MustCompile(`^\.[A-Za-z0-9]{1,10}$`)

// extensionFor picks the file extension for a media type: the table above,
// else the downloaded file's own, else the system's, else ".bin", so the
// name always has an extension BonyChat accepts.
func extensionFor(ctype, fetchedName string) string {
	if ext, ok := extensions[ctype]; ok {
		return ext
	}
	if i := strings.LastIndexByte(fetchedName, '.'); i > 0 && extensionPattern.MatchString(fetchedName[i:]) {
		return strings.ToLower(fetchedName[i:])
	}
	if exts, _ := mime.ExtensionsByType(ctype); len(exts) > 0 && extensionPattern.MatchString(exts[0]) {
		return exts[0]
	}
	return ".bin"
}

// mediaNote stands in for a media item that could not be downloaded.
func mediaNote(sid string, n int, ctype string) string {
	return fmt.Sprintf("[%s attachment could not be downloaded from Twilio (message %s, item %d); "+
		"ask the contact to send it again]", ctype, sid, n)
}

// Opt-out keywords Twilio itself honours on long codes and toll-free
// numbers: whole message, any case. "YES" opts back in only a contact who
// is opted out; otherwise it is just an answer.
var (
	stopKeywords  = map[string]bool{"STOP": true, "STOPALL": true, "UNSUBSCRIBE": true, "CANCEL": true, "END": true, "QUIT": true, "REVOKE": true, "OPTOUT": true}
	startKeywords = map[string]bool{"START": true, "UNSTOP": true}
	helpKeywords  = map[string]bool{"HELP": true, "INFO": true}
)

// applyOptOut records a STOP or START for this sender. OptOutType (sent
// only with Advanced Opt-Out, whose keywords may be custom) decides when
// present; otherwise an SMS body is classified against Twilio's default
// keywords. A WhatsApp body never is: Twilio applies those keywords to
// phone numbers only, so a WhatsApp "Cancel" (of a booking, say) opts
// nobody out, and Twilio would not confirm it to the contact either. The
// keyword message itself still reaches BonyChat as text. Twilio replies to
// these keywords itself: nothing is sent from here.
func (p *Provider) applyOptOut(ctx context.Context, contact string, form url.Values) error {
	kind := strings.ToUpper(strings.TrimSpace(form.Get("OptOutType")))
	if from := form.Get("From"); kind == "" && stripWhatsApp(from) == from {
		word := strings.ToUpper(strings.TrimSpace(form.Get("Body")))
		switch {
		case stopKeywords[word]:
			kind = "STOP"
		case startKeywords[word]:
			kind = "START"
		case word == "YES":
			kind = "YES"
		case helpKeywords[word]:
			kind = "HELP"
		}
	}
	switch kind {
	case "STOP":
		p.deps.Log.Info("twilio contact opted out", "channel", p.deps.ChannelID)
		return p.setOptOut(ctx, contact, true)
	case "START":
		p.deps.Log.Info("twilio contact opted back in", "channel", p.deps.ChannelID)
		return p.setOptOut(ctx, contact, false)
	case "YES":
		out, err := p.optedOut(ctx, contact)
		if err != nil || !out {
			return err
		}
		p.deps.Log.Info("twilio contact opted back in (YES)", "channel", p.deps.ChannelID)
		return p.setOptOut(ctx, contact, false)
	case "HELP":
		p.deps.Log.Info("twilio contact asked for HELP; Twilio answers it", "channel", p.deps.ChannelID)
	}
	return nil
}
