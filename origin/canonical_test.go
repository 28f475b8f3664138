package origin

import "testing"

func TestCanonical(t *testing.T) {
	for p, want := range map[string]bool{
		"/v1/rooms/lobby/buckets/1795855010.json": true,
		"/v1/rooms/lobby/head":                    true,
		"/":                                       true,
		"/v1/rooms/":                              true,
		"/v1/rooms//lobby/head":                   false,
		"/v1/rooms/lobby/./head":                  false,
		"/v1/rooms/x/../lobby/head":               false,
		"/v1/rooms/lobby/head/.":                  false,
		"/v1/rooms/lobby/head/..":                 false,
		"/v1/rooms/%6cobby/head":                  false,
		"/v1/rooms/lobby/buckets/%2e%2e":          false,
		"/v1/rooms/lobby/.hidden":                 true,
		"/v1/rooms/lobby/...":                     true,
	} {
		if got := canonical([]byte(p)); got != want {
			t.Errorf("canonical(%q) = %v, want %v", p, got, want)
		}
	}
}
