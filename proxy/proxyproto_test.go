package proxy

import (
	"bytes"
	"testing"
)

func TestProxyHeaderLocal(t *testing.T) {
	h := proxyHeader(nil, nil, nil)
	if !bytes.HasPrefix(h, proxySig) || h[12] != 0x20 || len(h) != 16 {
		t.Errorf("LOCAL header %x", h)
	}
}
