package schema

import (
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/go-playground/validator/v10"
)

// validateMessageUnion enforces the per-type rules of a message object: the
// fields its type requires, their limits, and no field of another type.
func validateMessageUnion(sl validator.StructLevel) {
	m := sl.Current().Interface().(Message)
	r := reporter{sl}
	switch m.Type {
	case TypeText:
		r.text("text", m.Text, MaxText)
	case TypeAttachment:
		if m.Attachment == nil {
			r.report(nil, "attachment", "required", "")
		}
	case TypeLocation:
		r.coordinate("latitude", m.Latitude, 90)
		r.coordinate("longitude", m.Longitude, 180)
		r.optionalText("address", m.Address, MaxAddress)
	case TypeQuickReply:
		r.text("title", m.Title, MaxTitle)
		r.replies(m.Replies)
	default:
		return // the oneof tag on type reports it
	}
	r.foreignFields(m)
}

type reporter struct{ sl validator.StructLevel }

func (r reporter) report(v any, field, tag, param string) {
	r.sl.ReportError(v, field, field, tag, param)
}

func (r reporter) text(field string, s *string, max int) {
	switch {
	case s == nil:
		r.report(s, field, "required", "")
	case *s == "":
		r.report(*s, field, "min", "1")
	default:
		r.optionalText(field, s, max)
	}
}

func (r reporter) optionalText(field string, s *string, max int) {
	if s != nil && utf8.RuneCountInString(*s) > max {
		r.report(*s, field, "max", strconv.Itoa(max))
	}
}

func (r reporter) coordinate(field string, v *float64, bound float64) {
	switch {
	case v == nil:
		r.report(v, field, "required", "")
	case *v < -bound:
		r.report(*v, field, "gte", fmt.Sprint(-bound))
	case *v > bound:
		r.report(*v, field, "lte", fmt.Sprint(bound))
	}
}

func (r reporter) replies(replies []string) {
	switch {
	case replies == nil:
		r.report(replies, "replies", "required", "")
		return
	case len(replies) == 0:
		r.report(replies, "replies", "min", "1")
	case len(replies) > MaxReplies:
		r.report(replies, "replies", "max", strconv.Itoa(MaxReplies))
	}
	for i, s := range replies {
		r.text(fmt.Sprintf("replies[%d]", i), &s, MaxReply)
	}
}

// foreignFields reports every field that belongs to another message type.
func (r reporter) foreignFields(m Message) {
	present := map[string]bool{
		"text":       m.Text != nil,
		"attachment": m.Attachment != nil,
		"latitude":   m.Latitude != nil,
		"longitude":  m.Longitude != nil,
		"address":    m.Address != nil,
		"title":      m.Title != nil,
		"replies":    m.Replies != nil,
	}
	allowed := fieldsOf[m.Type]
	for _, name := range []string{"text", "attachment", "latitude", "longitude", "address", "title", "replies"} {
		if present[name] && !allowed[name] {
			r.report(nil, name, "not_allowed", "")
		}
	}
}

var fieldsOf = map[string]map[string]bool{
	TypeText:       {"text": true},
	TypeAttachment: {"attachment": true},
	TypeLocation:   {"latitude": true, "longitude": true, "address": true},
	TypeQuickReply: {"title": true, "replies": true},
}
