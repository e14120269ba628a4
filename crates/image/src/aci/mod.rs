//! ACI images (appc 0.8.11): fetched from a file, a URL or by name through meta discovery,
//! their detached signatures checked against the trust store, their manifests validated,
//! dependencies rendered beneath them, and stored like Docker images: a rendered `rootfs/`
//! and the image's own `manifest`, under an ID that is the SHA-512 of the uncompressed tar,
//! as rkt computed it.
//!
//! Nothing is unpacked before the signature is verified and the manifest checked, and the
//! rootfs goes through the same confined [`Tree`] as Docker layers.

pub mod discovery;
pub mod http;
pub mod validate;

use crate::appc::ImageManifest;
use crate::error::{refuse, Context, Error, Result};
use crate::fetch::{Fetcher, PullPolicy};
use crate::registry::{failed, Failure};
use crate::store::{self, ImageInfo};
use crate::trust::{self, Verified};
use crate::unpack::Tree;
use sha2::{Digest, Sha512};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The largest ACI manifest read: it is read whole.
const MAX_MANIFEST_BYTES: u64 = 1 << 20;
/// How deep dependencies may nest.
const MAX_DEPTH: usize = 16;

/// Where an ACI comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    File(PathBuf),
    Url(String),
    /// An appc name, found through discovery.
    Name(discovery::App),
}

/// What an image argument that is not a Docker reference or an image ID names: a file (a
/// path, `file://…`, or a name ending in `.aci`), a URL, or an appc name.
pub fn location(input: &str) -> Result<Location> {
    if let Some(path) = input.strip_prefix("file://") {
        return Ok(Location::File(PathBuf::from(path)));
    }
    if input.starts_with("https://") || input.starts_with("http://") {
        return Ok(Location::Url(input.to_string()));
    }
    if let Some((scheme, _)) = input.split_once("://") {
        return Err(Error::invalid(format!(
            "image {input:?}: unsupported scheme {scheme:?}; use docker://, https://, http:// (with --insecure-options=http), file://, a path, or an appc name"
        )));
    }
    if input.starts_with('/') || input.starts_with('.') || input.ends_with(".aci") {
        return Ok(Location::File(PathBuf::from(input)));
    }
    Ok(Location::Name(discovery::App::parse(input)?))
}

/// Where rkt looked for the signature of an ACI at `path`: `x.aci` → `x.aci.asc`.
fn asc_path(path: &str) -> String {
    format!("{}.aci.asc", path.strip_suffix(".aci").unwrap_or(path))
}

/// An ACI downloaded (or opened) with its signature, before it is checked.
struct Candidate {
    /// The ACI as served (maybe compressed): what the signature signs.
    file: std::fs::File,
    signature: Option<Vec<u8>>,
    source: String,
    /// Where a missing signature was looked for, for the message.
    signature_at: String,
}

impl Fetcher {
    /// Fetches an ACI (or finds it in the store, as the pull policy allows); its image ID.
    /// `signature` is a local signature file (`--signature`).
    pub async fn fetch_aci(&self, input: &str, signature: Option<&Path>) -> Result<String> {
        let loc = location(input)?;
        self.fetch_location(input, &loc, signature, &mut Vec::new())
            .await
    }

    /// `chain` holds the names being fetched as dependencies, to find cycles.
    async fn fetch_location(
        &self,
        input: &str,
        loc: &Location,
        signature: Option<&Path>,
        chain: &mut Vec<String>,
    ) -> Result<String> {
        if let Location::Name(app) = loc {
            if self.policy != PullPolicy::Update {
                if let Some(info) = self.store.find_by_name(&app.name, app.version())? {
                    return Ok(info.id);
                }
                if self.policy == PullPolicy::Never {
                    return Err(Error::not_found(format!("image {input} is not in the store and --pull-policy=never forbids fetching it; fetch it first or use --pull-policy=new")));
                }
            }
        }
        // Scratch space, kept from `image gc` by the lock its name says (see Store::sweep).
        let suffix = store::tmp_suffix();
        let _scratch = self.store.lock(&format!("image-{suffix}"))?;
        let tmp = self.store.tmp_dir().join(format!("aci-{suffix}"));
        std::fs::create_dir_all(&tmp)?;
        let res = self.fetch_into(input, loc, signature, chain, &tmp).await;
        let _ = crate::unpack::remove_tree(&tmp);
        res.with_context(|| format!("fetching image {input}"))
    }

    async fn fetch_into(
        &self,
        input: &str,
        loc: &Location,
        signature: Option<&Path>,
        chain: &mut Vec<String>,
        tmp: &Path,
    ) -> Result<String> {
        let http = http::Http::new(&self.options)?.with_credentials(self.credentials.clone());
        let mut cand = self.obtain(&http, input, loc, tmp).await?;
        if let Some(sig) = signature {
            cand.signature = Some(
                std::fs::read(sig)
                    .with_context(|| format!("reading signature file {}", sig.display()))?,
            );
        }
        // Decompress to a plain tar, hashing it: the ID, and a file to read twice.
        let tar_path = tmp.join("image.tar");
        let id = decompress(&mut cand.file, &tar_path).map_err(Error::refusal)?;
        let manifest_bytes = read_manifest(&tar_path).map_err(Error::refusal)?;
        let manifest = validate::image_manifest(&manifest_bytes)
            .map_err(|e| Error::refused(format!("invalid image manifest: {e}")))?;
        if let Location::Name(app) = loc {
            check_matches(app, &manifest)?;
        }
        match (&cand.signature, self.verify) {
            (_, false) => {}
            (None, true) => return Err(Error::refused(format!(
                "no signature found (looked for {}); trust the image's key with `rkt trust --prefix={}` and make sure the signature is published, or pass --insecure-options=image to skip verification",
                cand.signature_at,
                manifest.name
            ))),
            (Some(sig), true) => {
                cand.file.seek(SeekFrom::Start(0))?;
                self.trust_keys_from_https(&manifest.name).await?;
                let verified = self
                    .check_signature(&manifest.name, &cand.file, sig)
                    .map_err(Error::refusal)?;
                self.progress.note(&verified.message());
            }
        }
        if self.store.has_image(&id) {
            self.store.touch(&id)?;
            return Ok(id);
        }
        let deps = self.fetch_dependencies(&manifest, chain).await?;
        self.publish(
            &id,
            &tar_path,
            &manifest,
            &manifest_bytes,
            &deps,
            &cand.source,
        )?;
        Ok(id)
    }

    /// `--trust-keys-from-https`, as rkt had it: when no key is trusted for `name`, the keys
    /// its meta discovery publishes (`ac-discovery-pubkeys`), over HTTPS only, are trusted for
    /// `name` without review, with a warning. Off by default.
    async fn trust_keys_from_https(&self, name: &str) -> Result<()> {
        if !self.trust_keys_from_https || !self.keystore.keys_for(name)?.is_empty() {
            return Ok(());
        }
        let https_only = crate::registry::Options {
            allow_http: false,
            ..self.options.clone()
        };
        let http = http::Http::new(&https_only)?;
        let (urls, _) = discovery::pubkey_urls(&http, name).await?;
        for url in urls.iter().filter(|u| u.starts_with("https://")) {
            let armored = http.get_required(url, "public key").await?;
            let path = self.keystore.store(Some(name), &armored)?;
            self.progress.note(&format!(
                "warning: trusting the key at {url} for prefix {name:?} without review (--trust-keys-from-https); stored at {}",
                path.display()
            ));
        }
        Ok(())
    }

    fn check_signature(&self, name: &str, file: &std::fs::File, sig: &[u8]) -> Result<Verified> {
        let keys = self.keystore.keys_for(name)?;
        if keys.is_empty() {
            refuse!(
                "no keys are trusted for {name}; trust one with `rkt trust --prefix={name} KEYFILE` (or --root), or pass --insecure-options=image to skip verification"
            );
        }
        trust::verify(
            &keys,
            std::io::BufReader::new(file),
            sig,
            std::time::SystemTime::now(),
        )
        .with_context(|| format!("verifying the signature of {name}"))
    }

    /// The ACI and its signature, downloaded into `tmp` or opened where they are.
    async fn obtain(
        &self,
        http: &http::Http,
        input: &str,
        loc: &Location,
        tmp: &Path,
    ) -> Result<Candidate> {
        match loc {
            Location::File(path) => {
                let file = std::fs::File::open(path)
                    .with_context(|| format!("opening ACI file {}", path.display()))?;
                let asc = asc_path(&path.to_string_lossy());
                let signature = match std::fs::read(&asc) {
                    Ok(b) => Some(b),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(e) => return Err(e).with_context(|| format!("reading {asc}")),
                };
                let source = std::path::absolute(path)?.to_string_lossy().into_owned();
                Ok(Candidate {
                    file,
                    signature,
                    source: format!("file://{source}"),
                    signature_at: asc,
                })
            }
            Location::Url(url) => {
                let asc = asc_path(url);
                self.download_pair(http, url, &asc, tmp, url).await
            }
            Location::Name(app) => {
                let (eps, attempts) = discovery::aci_endpoints(http, app).await?;
                if eps.is_empty() {
                    return Err(failed(Failure::NotFound, format!(
                        "appc discovery found no ACI for {input} (no ac-discovery meta tag for it: {}); if it is a Docker image, use docker://{input}",
                        attempts.describe()
                    )));
                }
                let mut errors = Vec::new();
                for ep in &eps {
                    match self.download_pair(http, &ep.aci, &ep.asc, tmp, input).await {
                        Ok(c) => return Ok(c),
                        Err(e) => errors.push(format!("{e:#}")),
                    }
                }
                Err(Error::failed(format!(
                    "no discovered location of {input} could be fetched: {}",
                    errors.join("; ")
                )))
            }
        }
    }

    async fn download_pair(
        &self,
        http: &http::Http,
        aci: &str,
        asc: &str,
        tmp: &Path,
        source: &str,
    ) -> Result<Candidate> {
        let path = tmp.join("image.aci");
        let what = format!("image {}", aci.rsplit('/').next().unwrap_or(aci));
        http.download(aci, &path, &*self.progress, &what).await?;
        let signature = if self.verify {
            match http.get_small(asc).await? {
                http::Got::Body(b) => Some(b),
                http::Got::Status(..) => None,
            }
        } else {
            None
        };
        Ok(Candidate {
            file: std::fs::File::open(&path)?,
            signature,
            source: source.to_string(),
            signature_at: asc.to_string(),
        })
    }

    /// Fetches (or finds) each dependency, depth first; their IDs in rendering order.
    async fn fetch_dependencies(
        &self,
        manifest: &ImageManifest,
        chain: &mut Vec<String>,
    ) -> Result<Vec<String>> {
        if manifest.dependencies.is_empty() {
            return Ok(Vec::new());
        }
        chain.push(manifest.name.clone());
        let mut ids = Vec::new();
        let res = async {
            for dep in &manifest.dependencies {
                if chain.contains(&dep.image_name) {
                    return Err(failed(
                        Failure::Refused,
                        format!(
                            "dependency cycle: {} -> {}",
                            chain.join(" -> "),
                            dep.image_name
                        ),
                    ));
                }
                if chain.len() >= MAX_DEPTH {
                    return Err(failed(
                        Failure::Refused,
                        format!("dependencies nest deeper than {MAX_DEPTH} images"),
                    ));
                }
                let id = self.dependency(dep, chain).await.with_context(|| {
                    format!("dependency {} of {}", dep.image_name, manifest.name)
                })?;
                ids.push(id);
            }
            Ok(())
        }
        .await;
        chain.pop();
        res.map(|()| ids)
    }

    async fn dependency(
        &self,
        dep: &crate::appc::Dependency,
        chain: &mut Vec<String>,
    ) -> Result<String> {
        if let Some(want) = &dep.image_id {
            if let Ok(info) = self.store.resolve(want) {
                return Ok(info.id);
            }
        }
        let mut app = discovery::App::parse(&dep.image_name)?;
        for l in &dep.labels {
            app.labels.insert(l.name.clone(), l.value.clone());
        }
        let loc = Location::Name(app);
        let id = Box::pin(self.fetch_location(&dep.image_name, &loc, None, chain)).await?;
        if let Some(want) = &dep.image_id {
            if !id.starts_with(want.as_str()) {
                refuse!("fetched image {id}, but the manifest pins {want}");
            }
        }
        Ok(id)
    }

    /// Renders the dependencies and the ACI's rootfs into a staging directory and publishes
    /// it under `id`.
    fn publish(
        &self,
        id: &str,
        tar_path: &Path,
        manifest: &ImageManifest,
        manifest_bytes: &[u8],
        deps: &[String],
        source: &str,
    ) -> Result<()> {
        let _lock = self.store.lock(&format!("image-{id}"))?;
        if self.store.has_image(id) {
            return Ok(());
        }
        let staged = self
            .store
            .tmp_dir()
            .join(format!("render-{id}-{}", std::process::id()));
        crate::unpack::remove_tree(&staged)?;
        let res = (|| -> Result<()> {
            let mut tree = Tree::open(&staged.join("rootfs"))?;
            let archive = std::fs::File::open(tar_path)?;
            self.render_aci(&mut tree, &staged, deps, archive, &manifest.path_whitelist)?;
            let info = ImageInfo {
                id: id.to_string(),
                name: manifest.name.clone(),
                version: manifest.label("version").map(str::to_string),
                source: source.to_string(),
                manifest_digest: String::new(),
                config_digest: String::new(),
                // The archive itself, kept to render the tree again (`rkt image verify`).
                layers: vec![format!("sha512:{}", id.trim_start_matches("sha512-"))],
                import_time: store::now_nanos(),
                last_used: store::now_nanos(),
                size: std::fs::metadata(tar_path)?.len() + store::tree_size(&staged.join("rootfs")),
                dependencies: deps.to_vec(),
            };
            std::fs::write(staged.join("manifest"), manifest_bytes)?;
            let info_json =
                serde_json::to_vec_pretty(&info).map_err(|e| Error::failed(e.to_string()))?;
            std::fs::write(staged.join("info.json"), info_json)?;
            crate::verify::record(&staged, tree.content_hashes())?;
            let blob = self.store.blob_path(&info.layers[0]);
            std::fs::rename(tar_path, &blob)
                .with_context(|| format!("keeping the archive as {}", blob.display()))?;
            Ok(())
        })();
        match res {
            Ok(()) => self.store.commit(&staged, id),
            Err(e) => {
                let _ = crate::unpack::remove_tree(&staged);
                Err(e)
            }
        }
    }

    /// Applies a stored image's tree (a dependency) by exporting it as an ACI and applying
    /// that, so that it passes the same checks as the image itself.
    /// Renders an ACI into `tree` (at `staged/rootfs`): its dependencies (stored images, in
    /// order), then its archive's `rootfs/`, then its `pathWhitelist`. A fetch and `rkt image
    /// verify`'s new render both come here.
    pub(crate) fn render_aci(
        &self,
        tree: &mut Tree,
        staged: &Path,
        deps: &[String],
        archive: std::fs::File,
        whitelist: &[String],
    ) -> Result<()> {
        for dep in deps {
            self.apply_stored(tree, dep, staged)?;
        }
        tree.apply_aci(std::io::BufReader::with_capacity(256 * 1024, archive))
            .context("rendering the ACI's rootfs")
            .map_err(Error::refusal)?;
        if !whitelist.is_empty() {
            keep_only(&staged.join("rootfs"), whitelist)?;
        }
        Ok(())
    }

    fn apply_stored(&self, tree: &mut Tree, id: &str, staged: &Path) -> Result<()> {
        let info = self.store.info(id)?;
        let aci = staged.with_extension(format!("dep-{}", store::tmp_suffix()));
        crate::export::write_aci(&self.store, &info, &aci, true)?;
        let res = std::fs::File::open(&aci)
            .map_err(Error::from)
            .and_then(|f| tree.apply_aci(std::io::BufReader::new(f)));
        let _ = std::fs::remove_file(&aci);
        res.with_context(|| format!("rendering dependency {}", info.name))
    }
}

/// An image found by discovery must be the one asked for: its name, and each label asked
/// for that it has (the `latest` version matches any).
fn check_matches(app: &discovery::App, m: &ImageManifest) -> Result<()> {
    if m.name != app.name {
        refuse!(
            "discovery for {} served an image named {}; refusing it",
            app.name,
            m.name
        );
    }
    for (k, v) in &app.labels {
        if let Some(have) = m.label(k) {
            if have != v && !(k == "version" && v == "latest") {
                refuse!(
                    "image {} has label {k}={have}, not the {k}={v} asked for",
                    m.name
                );
            }
        }
    }
    Ok(())
}

/// Decompresses an ACI (plain, gzip, bzip2 or xz, by its magic bytes) into `out`; the image
/// ID: `sha512-` and the hex SHA-512 of the uncompressed tar.
fn decompress(file: &mut std::fs::File, out: &Path) -> Result<String> {
    file.seek(SeekFrom::Start(0))?;
    let mut magic = [0u8; 6];
    let n = read_up_to(file, &mut magic)?;
    file.seek(SeekFrom::Start(0))?;
    let input = std::io::BufReader::with_capacity(256 * 1024, &*file);
    let mut reader: Box<dyn Read> = match &magic[..n] {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::MultiGzDecoder::new(input)),
        [b'B', b'Z', b'h', ..] => Box::new(bzip2::read::MultiBzDecoder::new(input)),
        [0xfd, b'7', b'z', b'X', b'Z', 0x00] => {
            Box::new(liblzma::read::XzDecoder::new_multi_decoder(input))
        }
        _ => Box::new(input),
    };
    let mut dest = std::io::BufWriter::new(
        std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?,
    );
    let mut hasher = Sha512::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = reader.read(&mut buf).context("decompressing the ACI")?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        dest.write_all(&buf[..n])?;
    }
    dest.flush()?;
    Ok(format!("sha512-{}", hex::encode(hasher.finalize())))
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// The `manifest` entry of an uncompressed ACI.
fn read_manifest(tar_path: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(tar_path)?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    for entry in archive
        .entries()
        .context("not a tar archive (nor a compressed one)")?
    {
        let mut entry = entry.context("reading the ACI archive")?;
        let path = entry.path_bytes();
        let name = path.strip_prefix(b"./").unwrap_or(&path);
        if name != b"manifest" {
            continue;
        }
        if !entry.header().entry_type().is_file() {
            refuse!("the ACI's manifest is not a regular file");
        }
        if entry.size() > MAX_MANIFEST_BYTES {
            refuse!("the ACI's manifest is over {MAX_MANIFEST_BYTES} bytes; refusing it");
        }
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes)?;
        return Ok(bytes);
    }
    refuse!("the archive has no manifest: it is not an ACI")
}

/// Keeps only the whitelisted paths (and the directories leading to them) in `root`.
fn keep_only(root: &Path, whitelist: &[String]) -> Result<()> {
    let keep: std::collections::HashSet<PathBuf> = whitelist
        .iter()
        .map(|p| PathBuf::from(p.trim_start_matches('/')))
        .collect();
    let parents: std::collections::HashSet<PathBuf> = keep
        .iter()
        .flat_map(|p| {
            p.ancestors()
                .skip(1)
                .map(Path::to_path_buf)
                .collect::<Vec<_>>()
        })
        .collect();
    fn walk(
        dir: &Path,
        rel: &Path,
        keep: &std::collections::HashSet<PathBuf>,
        parents: &std::collections::HashSet<PathBuf>,
    ) -> Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let rel_child = rel.join(entry.file_name());
            let is_dir = entry.file_type()?.is_dir();
            if keep.contains(&rel_child) {
                continue;
            }
            if is_dir && parents.contains(&rel_child) {
                walk(&entry.path(), &rel_child, keep, parents)?;
            } else if is_dir {
                crate::unpack::remove_tree(&entry.path())?;
            } else {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(())
    }
    walk(root, Path::new(""), &keep, &parents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        assert_eq!(
            location("/x/a.aci").unwrap(),
            Location::File("/x/a.aci".into())
        );
        assert_eq!(
            location("file:///x/a.aci").unwrap(),
            Location::File("/x/a.aci".into())
        );
        assert_eq!(location("a.aci").unwrap(), Location::File("a.aci".into()));
        assert!(matches!(
            location("https://h/a.aci").unwrap(),
            Location::Url(_)
        ));
        assert!(matches!(
            location("coreos.com/etcd:v2.0.4").unwrap(),
            Location::Name(_)
        ));
        assert!(location("ftp://h/a.aci").is_err());
        assert_eq!(asc_path("https://h/a.aci"), "https://h/a.aci.asc");
        assert_eq!(asc_path("/x/a"), "/x/a.aci.asc");
    }
}
