//go:build !linux

package pluginapi

import "errors"

func procStart(int) (uint64, byte, error) {
	return 0, 0, errors.New("sessions need Linux's /proc")
}

func killGroup(int) error { return errors.New("sessions need Linux") }
