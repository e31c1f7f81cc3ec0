package scan

import "syscall"

// ipBindAddressNoPort is IP_BIND_ADDRESS_NO_PORT of <linux/in.h>, which
// package syscall does not name.
const ipBindAddressNoPort = 24

func init() {
	setBindNoPort = func(fd uintptr) error {
		return syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
	}
}
