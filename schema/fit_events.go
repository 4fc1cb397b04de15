package schema

// FitEvents makes produced events fit the protocol without losing content:
// long text becomes several text events (mIds suffixed -1, -2, …), long file
// names are shortened keeping their extension, long addresses and
// descriptions are cut, and an attachment whose URL cannot fit becomes a text
// event carrying the link.
func FitEvents(events []Event) []Event {
	out := make([]Event, 0, len(events))
	for _, e := range events {
		if e.Message == nil {
			e.MID = Truncate(e.MID, MaxMID)
			if e.Status != nil {
				st := *e.Status
				st.Message = Truncate(st.Message, MaxStatusMessage)
				e.Status = &st
			}
			out = append(out, e)
			continue
		}
		out = append(out, fitMessageEvent(e)...)
	}
	return out
}

func fitMessageEvent(e Event) []Event {
	m := fitMessage(*e.Message)
	if m.Type != TypeText || m.Text == nil || Length(*m.Text) <= MaxText {
		e.MID = Truncate(e.MID, MaxMID)
		e.Message = &m
		return []Event{e}
	}
	parts := SplitText(*m.Text, MaxText)
	out := make([]Event, len(parts))
	for i, p := range parts {
		part := e
		part.MID = SuffixID(e.MID, i+1)
		part.Message = TextMessage(p)
		out[i] = part
	}
	return out
}

func fitMessage(m Message) Message {
	switch m.Type {
	case TypeAttachment:
		return fitAttachment(m)
	case TypeLocation:
		if m.Address != nil {
			a := Truncate(*m.Address, MaxAddress)
			m.Address = &a
		}
	case TypeQuickReply:
		t := Truncate(deref(m.Title), MaxTitle)
		m.Title = &t
		replies := make([]string, 0, len(m.Replies))
		for _, r := range m.Replies {
			replies = append(replies, Truncate(r, MaxReply))
		}
		m.Replies = replies[:min(len(replies), MaxReplies)]
	}
	return m
}

func fitAttachment(m Message) Message {
	if m.Attachment == nil {
		return m
	}
	a := *m.Attachment
	if Length(a.URL) > MaxURL {
		text := a.URL
		if a.FileName != "" {
			text = a.FileName + ": " + a.URL
		}
		return *TextMessage(text)
	}
	if a.FileName != "" {
		a.FileName = ShortenFileName(a.FileName, MaxFileName)
		if !fileNamePattern.MatchString(a.FileName) {
			a.FileName = "" // cannot be made valid; BonyChat takes the URL alone
		}
	}
	if a.Type != "image" {
		a.Description = ""
	}
	a.Description = Truncate(a.Description, MaxDescription)
	m.Attachment = &a
	return m
}

// FitContact cuts names to their limits and leaves out any field that cannot
// be made valid (an over-long e-mail or phone, a malformed country code), so
// that BonyChat never refuses an event because of the profile.
func FitContact(c *Contact) *Contact {
	if c == nil {
		return nil
	}
	f := *c
	f.FirstName = Truncate(f.FirstName, MaxName)
	f.LastName = Truncate(f.LastName, MaxName)
	f.Email = keepIf(f.Email, Length(f.Email) <= MaxEmail)
	f.Phone = keepIf(f.Phone, Length(f.Phone) <= MaxPhone)
	f.ProfilePic = keepIf(f.ProfilePic, IsHTTPURL(f.ProfilePic) && Length(f.ProfilePic) <= MaxURL)
	f.Locale = keepIf(f.Locale, localePattern.MatchString(f.Locale))
	f.CountryCode = keepIf(f.CountryCode, isUpperPair(f.CountryCode))
	f.Language = keepIf(f.Language, isLowerPair(f.Language))
	if f.Timezone != nil && !(*f.Timezone >= -24 && *f.Timezone <= 24) { // NaN too
		f.Timezone = nil
	}
	if f == (Contact{}) {
		return nil
	}
	return &f
}

// TextMessage builds a text message object.
func TextMessage(text string) *Message {
	return &Message{Type: TypeText, Text: &text}
}

func keepIf(s string, ok bool) string {
	if ok {
		return s
	}
	return ""
}

func isUpperPair(s string) bool {
	return len(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z'
}

func isLowerPair(s string) bool {
	return len(s) == 2 && s[0] >= 'a' && s[0] <= 'z' && s[1] >= 'a' && s[1] <= 'z'
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
