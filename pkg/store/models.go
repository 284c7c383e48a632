package store

import "time"

// Ingest statuses (DESIGN.md): a file is pending until a worker has read it.
const (
	StatusPending   = "pending"
	StatusProcessed = "processed"
	StatusDuplicate = "duplicate"
	StatusFailed    = "failed"
)

// Ingest is one distinct raw file handed over by a source.
type Ingest struct {
	ID          int64
	SHA256      string `gorm:"column:sha256"`
	Filename    string
	Source      string // upload, import, imap
	SourceRef   string // message-id, path or mailbox, for people tracing a file back
	SizeBytes   int64
	Status      string
	Error       string
	ReportCount int
	Attempts    int
	ReceivedAt  time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
	ProcessedAt *time.Time
}

// RawFile holds an ingest's original bytes, compressed with Encoding unless they already were.
type RawFile struct {
	IngestID int64 `gorm:"primaryKey"`
	Encoding string
	Data     []byte
}

// Report is a stored aggregate report: metadata and published policy, one row.
type Report struct {
	ID                    int64
	IngestID              int64
	OrgName               string
	OrgKey                string
	Email                 string
	ExtraContactInfo      string
	ReportID              string `gorm:"column:report_id"`
	Domain                string
	DateBegin             time.Time
	DateEnd               time.Time
	Version               string
	Namespace             string
	Generator             string
	Errors                string // JSON array
	PolicyP               string
	PolicySP              string `gorm:"column:policy_sp"`
	PolicyNP              string `gorm:"column:policy_np"`
	PolicyADKIM           string `gorm:"column:policy_adkim"`
	PolicyASPF            string `gorm:"column:policy_aspf"`
	PolicyPct             *int
	PolicyFO              string `gorm:"column:policy_fo"`
	PolicyTesting         string
	PolicyDiscoveryMethod string
	RecordCount           int
	MessageCount          int64
	Warnings              string // JSON array
	CreatedAt             time.Time
}

// Record is one row of a report: a source IP and what happened to its messages.
type Record struct {
	ID           int64
	ReportID     int64
	SourceIP     string `gorm:"column:source_ip"`
	IP           []byte `gorm:"column:ip"`
	Count        int64
	Disposition  string
	DKIM         string `gorm:"column:dkim"`
	SPF          string `gorm:"column:spf"`
	HeaderFrom   string
	EnvelopeFrom string
	EnvelopeTo   string
	Reasons      string // JSON array of {type, comment}
	DKIMResults  string `gorm:"column:dkim_results"` // JSON array
	SPFResults   string `gorm:"column:spf_results"`  // JSON array
}

// IngestReport links a file to each report it yielded.
type IngestReport struct {
	IngestID  int64 `gorm:"primaryKey"`
	ReportID  int64 `gorm:"primaryKey"`
	Duplicate bool
}
