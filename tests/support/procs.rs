//! The host's processes, by what their command line says: the pids a container prints
//! are its own namespace's when an OCI runtime isolates it, so tests find its processes
//! on the host by their arguments.

/// The host's processes whose command line (arguments separated by NUL, as in
/// `/proc/<pid>/cmdline`) passes `test`.
pub fn pids_where(test: impl Fn(&str) -> bool) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| test(&String::from_utf8_lossy(&c)))
        })
        .collect()
}
