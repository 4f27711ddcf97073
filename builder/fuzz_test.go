package builder

import "testing"

// FuzzPlan feeds arbitrary Dockerfiles through parsing, planning and the
// dry expansion of every instruction: none of it may panic.
func FuzzPlan(f *testing.F) {
	for _, s := range []string{
		"FROM busybox\nRUN echo hi\n",
		"ARG A=1\nFROM x:${A} AS b\nCOPY --from=b /a /b\nFROM b\nENV X=$A\n",
		"# escape=`\nFROM scratch\nCOPY <<EOF /x\nhi $Y\nEOF\n",
		"FROM a AS x\nFROM x\nRUN --mount=type=cache,target=/c --network=none <<E\nls\nE\n",
		"FROM a\nONBUILD RUN x\nHEALTHCHECK --interval=1s CMD x\nEXPOSE 80/udp 1-2\nSHELL [\"a\"]\nCMD b\n",
	} {
		f.Add([]byte(s), "")
	}
	f.Fuzz(func(t *testing.T, data []byte, target string) {
		describe("Dockerfile", data, PlanOptions{Target: target, BuildArgs: map[string]string{"A": "2"}})
	})
}
