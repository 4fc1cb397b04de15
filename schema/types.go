package schema

// Message types, as BonyChat names them.
const (
	TypeText       = "text"
	TypeAttachment = "attachment"
	TypeLocation   = "location"
	TypeQuickReply = "quick_reply"
)

// Event types on the BonyChat webhook.
const (
	EventMessage       = "message"
	EventMessageEcho   = "message_echo"
	EventMessageStatus = "message_status"
)

// Status values of a message_status event.
const (
	StatusSent      = "sent"
	StatusDelivered = "delivered"
	StatusRead      = "read"
	StatusFailed    = "failed"
)

// IDType is a channel's contact ID type, chosen by the BonyChat admin.
type IDType string

// The two ID types BonyChat offers.
const (
	IDTypePhone  IDType = "phone"
	IDTypeCustom IDType = "custom"
)

// MessageRequest is the body of POST /message.
type MessageRequest struct {
	ChannelID string   `json:"channelId" validate:"required,max=100"`
	ContactID string   `json:"contactId" validate:"required"`
	Message   *Message `json:"message" validate:"required"`
}

// Message is one of the four message objects. Fields of the other types
// stay nil; Validate refuses a message that carries them.
type Message struct {
	Type string `json:"type" validate:"required,oneof=text attachment location quick_reply"`

	Text *string `json:"text,omitempty"`

	Attachment *Attachment `json:"attachment,omitempty"`

	Latitude  *float64 `json:"latitude,omitempty"`
	Longitude *float64 `json:"longitude,omitempty"`
	Address   *string  `json:"address,omitempty"`

	Title   *string  `json:"title,omitempty"`
	Replies []string `json:"replies,omitempty"`
}

// Attachment is the nested object of an attachment message.
type Attachment struct {
	Type        string `json:"type" validate:"required,oneof=image video audio file"`
	URL         string `json:"url" validate:"required,max=2000,httpurl"`
	MimeType    string `json:"mimeType,omitempty"`
	FileName    string `json:"fileName,omitempty" validate:"omitempty,max=256,extension"`
	Description string `json:"description,omitempty" validate:"excluded_unless=Type image,omitempty,max=256"`
}

// WebhookPayload is what the server posts to BonyChat's webhook.
type WebhookPayload struct {
	ChannelID string   `json:"channelId" validate:"required,max=100"`
	ContactID string   `json:"contactId" validate:"required"` // per ID type: ValidatePayload
	Events    []Event  `json:"events" validate:"required,min=1,max=20,dive"`
	Contact   *Contact `json:"contact,omitempty"`
}

// Event is one entry of a webhook payload's events.
type Event struct {
	Type      string   `json:"type" validate:"required,oneof=message message_echo message_status"`
	MID       string   `json:"mId" validate:"required,max=50"`
	Timestamp int64    `json:"timestamp" validate:"required,gt=0"`
	Message   *Message `json:"message,omitempty"`
	Status    *Status  `json:"status,omitempty"`
}

// Status is the receipt carried by a message_status event.
type Status struct {
	Value   string `json:"value" validate:"required,oneof=sent delivered read failed"`
	Message string `json:"message,omitempty" validate:"max=1000"`
}

// Contact is the optional profile BonyChat uses when it creates a contact.
type Contact struct {
	FirstName   string   `json:"firstName,omitempty" validate:"max=50"`
	LastName    string   `json:"lastName,omitempty" validate:"max=50"`
	ProfilePic  string   `json:"profilePic,omitempty" validate:"omitempty,max=2000,httpurl"`
	Locale      string   `json:"locale,omitempty" validate:"omitempty,locale"`
	CountryCode string   `json:"countryCode,omitempty" validate:"omitempty,len=2,uppercase,alpha"`
	Timezone    *float64 `json:"timezone,omitempty" validate:"omitempty,gte=-24,lte=24"`
	Email       string   `json:"email,omitempty" validate:"max=50"`
	Phone       string   `json:"phone,omitempty" validate:"max=18"`
	Language    string   `json:"language,omitempty" validate:"omitempty,len=2,lowercase,alpha"`
}
