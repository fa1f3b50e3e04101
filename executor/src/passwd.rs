//! `HOME` from the container's `/etc/passwd`, without allocating: the file is read in chunks
//! into a stack buffer and scanned a line at a time (`name:pw:uid:gid:gecos:home:shell`).

use crate::errno;
use crate::fs::{Fd, open_in_root};
use libc::c_int;

/// Room for one line; a longer one is skipped (no real entry is that long).
const LINE_MAX: usize = 8192;
/// Stop after this much: a passwd file is a few kilobytes, an image's trap is not.
const READ_MAX: usize = 16 << 20;

/// Writes the home directory of `uid` into `out` and returns its length; `/` when the file is
/// missing, unreadable as a regular file, or has no entry for `uid` (runc's and crun's default).
pub(crate) fn home_of(root: c_int, uid: u32, out: &mut [u8]) -> usize {
    match find(root, uid, out) {
        Some(n) => n,
        None => {
            out[0] = b'/';
            1
        }
    }
}

fn find(root: c_int, uid: u32, out: &mut [u8]) -> Option<usize> {
    // Non-blocking: a FIFO planted at /etc/passwd must not hang the start.
    let fd = open_in_root(root, b"/etc/passwd\0", libc::O_RDONLY | libc::O_NONBLOCK).ok()?;
    if !is_regular(&fd) {
        return None;
    }
    let mut want = [0u8; 10];
    let want = decimal(uid, &mut want);
    let mut line = [0u8; LINE_MAX];
    let mut len = 0;
    let mut skipping = false;
    let mut total = 0;
    let mut chunk = [0u8; 4096];
    loop {
        // SAFETY: reading into our buffer.
        let n = unsafe { libc::read(fd.0, chunk.as_mut_ptr().cast(), chunk.len()) };
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        if n <= 0 {
            break;
        }
        let n = n as usize;
        total += n;
        for &b in &chunk[..n] {
            if b == b'\n' {
                if !skipping && let Some(h) = home_in_line(&line[..len], want, out) {
                    return Some(h);
                }
                len = 0;
                skipping = false;
            } else if len < LINE_MAX {
                line[len] = b;
                len += 1;
            } else {
                skipping = true;
            }
        }
        if total >= READ_MAX {
            return None;
        }
    }
    if skipping {
        return None;
    }
    home_in_line(&line[..len], want, out)
}

fn is_regular(fd: &Fd) -> bool {
    // SAFETY: an all-zero stat is a valid out-buffer for fstat on our fd.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    (unsafe { libc::fstat(fd.0, &mut st) }) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFREG
}

/// `uid` in decimal, in `buf`.
fn decimal(mut uid: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (uid % 10) as u8;
        uid /= 10;
        if uid == 0 {
            return &buf[i..];
        }
    }
}

/// The home field of a line whose uid field is `uid`, copied into `out`.
fn home_in_line(line: &[u8], uid: &[u8], out: &mut [u8]) -> Option<usize> {
    let mut fields = line.split(|&b| b == b':');
    let _name = fields.next()?;
    let _password = fields.next()?;
    if fields.next()? != uid {
        return None;
    }
    let _gid = fields.next()?;
    let _gecos = fields.next()?;
    let home = fields.next()?;
    if home.is_empty() || home.len() > out.len() || home.contains(&0) {
        return None;
    }
    out[..home.len()].copy_from_slice(home);
    Some(home.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_gives_its_home_only_for_its_uid() {
        let mut out = [0u8; 64];
        let line = b"user:x:1000:1000:A User:/home/user:/bin/sh";
        assert_eq!(home_in_line(line, b"1000", &mut out), Some(10));
        assert_eq!(&out[..10], b"/home/user");
        assert_eq!(home_in_line(line, b"100", &mut out), None);
        assert_eq!(home_in_line(b"broken:x:1000", b"1000", &mut out), None);
        assert_eq!(home_in_line(b"e:x:7:7::", b"7", &mut out), None);
        let mut d = [0u8; 10];
        assert_eq!(decimal(0, &mut d), b"0");
        assert_eq!(decimal(4294967295, &mut d), b"4294967295");
    }
}
