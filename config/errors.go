package config

import (
	"fmt"
	"sort"
	"strings"
)

// Pos is a position in a config file; Line and Column are 1-based, 0 when
// unknown.
type Pos struct {
	Line, Column int
}

// Error is one problem found in a config (or .cfg import) file.
type Error struct {
	File   string
	Line   int // 1-based; 0 = the file as a whole
	Column int // 1-based; 0 = the line as a whole
	Msg    string
}

// Error formats the problem as file:line:column: message (the column only
// when known).
func (e Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteByte(':')
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "%d:", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, "%d:", e.Column)
		}
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in a file, in file order. Parse, Load,
// Validate and Import return it (as error) so callers can show them all.
type Errors []Error

// Error prints one problem per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// sort orders problems by file position, keeping the order of checks for
// problems on the same spot.
func (es Errors) sort() {
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].File != es[j].File {
			return es[i].File < es[j].File
		}
		if es[i].Line != es[j].Line {
			return es[i].Line < es[j].Line
		}
		return es[i].Column < es[j].Column
	})
}

// MaxErrors is the most problems reported for one file; the rest are
// counted in a last line ("and N more problems").
const MaxErrors = 50

// err returns es as an error, nil when empty: sorted, and capped at
// MaxErrors problems plus one line counting the others.
func (es Errors) err() error {
	if len(es) == 0 {
		return nil
	}
	es.sort()
	if len(es) > MaxErrors {
		more := Error{File: es[0].File, Msg: fmt.Sprintf("and %d more problems; fix these first", len(es)-MaxErrors)}
		es = append(es[:MaxErrors:MaxErrors], more)
	}
	return es
}
