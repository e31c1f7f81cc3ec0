package registry

import "context"

// maxCommands bounds one session of a line-based application.
const maxCommands = 1000

// Dialogue runs a line-based application on s: it reads a line, hands it
// to answer and writes the reply (nothing when it is empty), for at most
// 1000 commands. It returns when answer reports the last one, a read or
// a write fails, or ctx ends.
func Dialogue(ctx context.Context, s Session, answer func(line string) (reply []string, last bool)) {
	for i := 0; i < maxCommands && ctx.Err() == nil; i++ {
		line, err := s.ReadLine()
		if err != nil {
			return
		}
		reply, last := answer(line)
		if len(reply) > 0 && s.Write(reply...) != nil || last {
			return
		}
	}
}
