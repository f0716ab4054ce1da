package mgmt

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind (a server
// whose Run did not return, a handler still blocked).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
