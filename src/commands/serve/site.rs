//! What `gpu-nn serve` hands out, decided once when it starts: the page's own files (the
//! regular files at the top of `web/`, in `web/js/` and in `web/pkg/`: no dotfiles, no symlinks, nothing in
//! `web/test/`, `node_modules/` or any other folder) and the four data files, each under one
//! exact URL path. A request names one of those paths exactly or gets nothing: no part of a
//! request is ever joined onto a folder, so no spelling of a path (`..`, `%2e%2e`, backslashes,
//! `C:`, `\\host\share`) reaches anything else, on any platform.

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The page's folders whose files are served: its top, its script's modules and its
/// WebAssembly package.
pub const PAGE_FOLDERS: [&str; 3] = ["", "js", "pkg"];

pub struct Site {
    /// URL path (`/index.html`, `/pkg/gpu_nn.js`, `/data/…`) → the file.
    files: BTreeMap<String, PathBuf>,
}

impl Site {
    /// The page in `web` and the data files `data` (URL name under `/data/`, file).
    pub fn build(web: &Path, data: &[(String, PathBuf)]) -> Result<Site> {
        let root = web.canonicalize().with_context(|| format!("--web {}: cannot open the directory", web.display()))?;
        let mut files = BTreeMap::new();
        for folder in PAGE_FOLDERS {
            let dir = root.join(folder);
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                // lstat: a symlink is never served, whatever it points at
                let Ok(meta) = std::fs::symlink_metadata(entry.path()) else { continue };
                if name.starts_with('.') || !meta.is_file() || !plain(name) {
                    continue;
                }
                // a folder that is itself a symlink out of the page is not the page
                let Ok(real) = entry.path().canonicalize() else { continue };
                if !real.starts_with(&root) {
                    continue;
                }
                let url = if folder.is_empty() { format!("/{name}") } else { format!("/{folder}/{name}") };
                files.insert(url, real);
            }
        }
        if !files.contains_key("/index.html") {
            bail!("--web {}: no index.html there; give the directory of the page (the repository's web/)", web.display());
        }
        for (name, path) in data {
            files.insert(format!("/data/{name}"), path.clone());
        }
        Ok(Site { files })
    }

    /// The file a request's path (without its query) names, if the site has it: `/` is
    /// `/index.html`; anything else must be one of the site's paths, letter for letter.
    pub fn resolve(&self, path: &str) -> Option<&Path> {
        let path = if path == "/" { "/index.html" } else { path };
        self.files.get(path).map(PathBuf::as_path)
    }

    /// Every URL path served.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }
}

/// A file name a URL carries as it is: letters, digits, `.`, `_`, `-`.
fn plain(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page folder with what must be served and what must not.
    fn page() -> (PathBuf, Site) {
        let dir = std::env::temp_dir().join(format!("gpu-nn-site-{}-{:?}", std::process::id(), std::thread::current().id()));
        let _ = std::fs::remove_dir_all(&dir);
        let web = dir.join("web");
        for d in ["pkg", "js", "test", "node_modules/pkg", "data"] {
            std::fs::create_dir_all(web.join(d)).unwrap();
        }
        for f in ["index.html", "app.js", "js/curves.js", "style.css", "pkg/gpu_nn.js", "pkg/gpu_nn_bg.wasm", "test/browser-check.mjs", "node_modules/pkg/index.js", ".gitignore", "data/x"] {
            std::fs::write(web.join(f), f).unwrap();
        }
        std::fs::write(dir.join("secret"), "secret").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(dir.join("secret"), web.join("link.js")).unwrap();
        let labels = dir.join("labels.gz");
        std::fs::write(&labels, "labels").unwrap();
        let site = Site::build(&web, &[("train-labels-idx1-ubyte".into(), labels)]).unwrap();
        (dir, site)
    }

    #[test]
    fn only_the_page_and_the_data_files_are_served() {
        let (dir, site) = page();
        let served: Vec<&str> = site.paths().collect();
        assert_eq!(served, ["/app.js", "/data/train-labels-idx1-ubyte", "/index.html", "/js/curves.js", "/pkg/gpu_nn.js", "/pkg/gpu_nn_bg.wasm", "/style.css"]);
        assert!(site.resolve("/").unwrap().ends_with("web/index.html"));
        assert!(site.resolve("/data/train-labels-idx1-ubyte").unwrap().ends_with("labels.gz"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Every spelling of a way out, Windows' included, tested as strings on every platform.
    #[test]
    fn no_spelling_of_a_path_leaves_the_site() {
        let (dir, site) = page();
        for refused in [
            "/../secret",
            "/pkg/../../secret",
            "/%2e%2e/secret",
            "/%2E%2E%2Fsecret",
            "/test/browser-check.mjs",
            "/node_modules/pkg/index.js",
            "/.gitignore",
            "/link.js",
            "/data/x",
            "/data/passwd",
            "/data/../secret",
            "//etc/passwd",
            "/C:/Windows/win.ini",
            "/C:%5CWindows%5Cwin.ini",
            "/c:secret",
            "/a\\..\\..\\secret",
            "/pkg\\..\\..\\secret",
            "/\\\\host\\share\\secret",
            "/%5C%5Chost%5Cshare",
            "/index.html/",
            "/index.html%00.js",
            "/INDEX.HTML",
            "/app.js::$DATA",
            "/app.js.",
            "",
        ] {
            assert_eq!(site.resolve(refused), None, "{refused}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
