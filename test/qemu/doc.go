// Package qemu boots a guest image (microvm/) under QEMU for tests: the same
// kernel, root disk and first-boot data a KubeVirt VMI gets, on a laptop or
// a CI machine without Kubernetes and, if need be, without KVM.
//
// [Boot] starts qemu-system-x86_64 with
//
//   - machine q35 (KubeVirt's machine family), direct kernel boot
//     (-kernel, -initrd, -append) and the image's qcow2 as a virtio root
//     disk opened with snapshot=on, so the image is never written;
//   - a first-boot seed built from [Seed] bytes exactly as KubeVirt builds
//     it: an ISO 9660 image (xorrisofs -joliet -rock) labelled "cidata"
//     for cloud-init's NoCloud datasource (user-data, meta-data,
//     network-config) or "config-2" for ConfigDrive
//     (openstack/latest/user_data, meta_data.json, network_data.json: what
//     Cloudbase-Init reads on Windows), attached as a read-only virtio disk;
//   - user-mode networking with restrict=on (the guest reaches nothing
//     outside) and one forward, hostfwd=tcp:<127.x.y.z>:<port>-:22, to the
//     guest's sshd;
//   - the serial console (ttyS0) written to a file ([VM.ConsoleTail]);
//   - KVM when /dev/kvm can run this kernel, else TCG
//     (-accel tcg,thread=multi -cpu max); see [DetectAccel]. Machines that
//     are themselves VMs often have a /dev/kvm that opens but cannot run a
//     64-bit guest: the probe boots the kernel briefly and watches it.
//
// Boot returns once the guest's sshd sends its SSH banner on the forwarded
// port. A guest that does not get there before Options.BootTimeout, or a
// QEMU that exits first, is stopped, and the error carries the last lines
// of its console. Logging in, pinning the host key and waiting for
// cloud-init are the caller's (see the package's boot test).
//
// [VM.Stop] kills QEMU, reaps it and removes the guest's private runtime
// directory: the seed (it holds the job's secrets), the QMP socket, QEMU's
// log and, unless Options.ConsolePath named another file, the console. It
// is idempotent; [VM.ConsoleTail] keeps working after it.
// [BootForTest] does all of this for a test and logs the console tail when
// the test fails.
//
// Secrets in user-data (private host keys, password hashes) are written
// only to files of mode 0600 in a private directory and removed again; they
// never appear in QEMU's arguments, in logs or in errors.
//
// Required Debian packages: qemu-system-x86 (qemu-system-x86_64) and
// xorriso (xorrisofs). When one is missing, Boot returns an error naming
// the package; tests must fail on it, not skip.
package qemu
