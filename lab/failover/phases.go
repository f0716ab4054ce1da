package failover

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ringway/ringway/lab"
)

// Phases splits one trial's outage into where the time went, read from the
// nodes' logs (millisecond timestamps) and the stream's gap:
//
//	last reply ─Before─ cut ─Detect─ membership without the cut node ─Pass─
//	new owner's router acquires the gateway VIP ─Resume─ first reply
//
// Detect is the token reaching the cut node's predecessor plus the ack
// budget there (or a token loss); Pass is the new membership travelling
// round the ring to the node that takes the VIP over; Resume is the new
// owner's gratuitous ARP, the client's ARP cache and the path back.
type Phases struct {
	Before   time.Duration `json:"-"`
	Detect   time.Duration `json:"-"`
	Pass     time.Duration `json:"-"`
	Resume   time.Duration `json:"-"`
	Detector string        `json:"detector"` // the node whose decision dropped the cut node
	Owner    string        `json:"owner"`    // the node that took the gateway VIP over
	Cause    string        `json:"cause"`    // the detector's logged cause

	// RotationMs is the token's rotation time the nodes reported (median)
	// just before the cut: a hop failure is found when the token next
	// reaches the cut node's predecessor (0 to 1 rotation) plus that
	// hop's ack budget.
	RotationMs float64 `json:"rotation_ms"`

	BeforeMs float64 `json:"before_ms"`
	DetectMs float64 `json:"detect_ms"`
	PassMs   float64 `json:"pass_ms"`
	ResumeMs float64 `json:"resume_ms"`
}

// Explainer is implemented by systems whose logs say where a trial's outage
// went (ringway). Measure calls it after each trial's recovery.
type Explainer interface {
	Phases(l *lab.Lab, tr Trial) (Phases, error)
}

// Phases implements Explainer from the nodes' logs in the lab directory.
func (r *Ringway) Phases(l *lab.Lab, tr Trial) (Phases, error) {
	logs := make([]io.Reader, l.Nodes())
	for i := 1; i <= l.Nodes(); i++ {
		f, err := os.Open(l.LogPath(l.Node(i), r.Binary))
		if err != nil {
			return Phases{}, err
		}
		defer f.Close()
		logs[i-1] = f
	}
	p, err := ringwayPhases(logs, tr)
	p.RotationMs = round(r.rotation)
	return p, err
}

// ringwayPhases reads node logs (logs[i-1] is node n<i>'s) for trial tr:
// the first membership decision (not a learnt one) after the cut whose
// members leave the cut node out, and the first acquisition of the client's
// gateway VIP by another node after the cut.
func ringwayPhases(logs []io.Reader, tr Trial) (Phases, error) {
	cut := fmt.Sprintf("n%d", tr.Node)
	// Log times are truncated to the millisecond: a line of the cut's own
	// millisecond counts.
	from := tr.CutAt.Truncate(time.Millisecond)
	until := tr.Gap.To.Add(2 * time.Second)
	var detect, acquire time.Time
	var p Phases
	for k, rd := range logs {
		node := fmt.Sprintf("n%d", k+1)
		sc := bufio.NewScanner(rd)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			t, ok := lineTime(line)
			if !ok || t.Before(from) || t.After(until) {
				continue
			}
			switch {
			case strings.Contains(line, "msg=membership ") && !strings.Contains(line, "learnt=true"):
				m, ok := field(line, "members")
				if !ok || slices.Contains(strings.Fields(strings.Trim(m, "[]")), cut) {
					continue
				}
				if detect.IsZero() || t.Before(detect) {
					detect, p.Detector = t, node
					p.Cause, _ = field(line, "cause")
				}
			case node != cut && strings.Contains(line, `msg="router: ownership changed"`):
				a, ok := field(line, "acquired")
				if !ok || !slices.Contains(strings.Fields(strings.Trim(a, "[]")), lab.ExtGateway.String()) {
					continue
				}
				if acquire.IsZero() || t.Before(acquire) {
					acquire, p.Owner = t, node
				}
			}
		}
		if err := sc.Err(); err != nil {
			return Phases{}, fmt.Errorf("%s log: %w", node, err)
		}
	}
	if detect.IsZero() {
		return Phases{}, fmt.Errorf("no membership without %s logged after the cut", cut)
	}
	if acquire.IsZero() {
		return Phases{}, fmt.Errorf("no node logged acquiring %s after the cut", lab.ExtGateway)
	}
	p.Before = tr.CutAt.Sub(tr.Gap.From)
	p.Detect = detect.Sub(from)
	p.Pass = acquire.Sub(detect)
	p.Resume = tr.Gap.To.Sub(acquire)
	p.BeforeMs, p.DetectMs, p.PassMs, p.ResumeMs = ms(p.Before), ms(p.Detect), ms(p.Pass), ms(p.Resume)
	return p, nil
}

func ms(d time.Duration) float64 { return round(float64(d) / float64(time.Millisecond)) }

// lineTime is the time= of a log/slog text line.
func lineTime(line string) (time.Time, bool) {
	v, ok := field(line, "time")
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	return t, err == nil
}

// field returns the value of key=value in a log/slog text line, unquoted.
func field(line, key string) (string, bool) {
	i := 0
	for {
		j := strings.Index(line[i:], key+"=")
		if j < 0 {
			return "", false
		}
		j += i
		if j == 0 || line[j-1] == ' ' {
			v := line[j+len(key)+1:]
			if strings.HasPrefix(v, `"`) {
				// Quoted: up to the next unescaped quote.
				for e := 1; e < len(v); e++ {
					if v[e] == '\\' {
						e++
						continue
					}
					if v[e] == '"' {
						return strings.ReplaceAll(v[1:e], `\"`, `"`), true
					}
				}
				return v[1:], true
			}
			if e := strings.IndexByte(v, ' '); e >= 0 {
				v = v[:e]
			}
			return v, true
		}
		i = j + len(key) + 1
	}
}

var _ Explainer = (*Ringway)(nil)
