//! `rkt fetch` for Docker/OCI images: resolve, download, verify, render, publish.
//!
//! Layers download in parallel into the blob store, each hashed as it streams; the render
//! applies them in order as soon as each one (and every one before it) is verified, so
//! decompression and unpacking overlap the downloads that are still running. Nothing is
//! unpacked before its digest has been checked.

use crate::appc::{self, DockerImageConfig, Provenance};
use crate::auth::Credentials;
use crate::digest;
use crate::error::{refuse, Context, Error, Failure, Result};
use crate::reference::{classify, ImageArg, Reference};
use crate::registries::Registries;
use crate::registry::{self, Endpoint, RawManifest, Registry};
use crate::store::{self, ImageInfo, Store};
use crate::unpack::{Compression, Tree};
use futures_util::StreamExt;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::io::{Read, Seek, Write};
use std::path::PathBuf;
use std::sync::Arc;

/// `--pull-policy`: when to ask the registry.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Use a stored image of the same name and tag if there is one.
    #[default]
    New,
    /// Always ask the registry; reuse what is stored if it is the same image.
    Update,
    /// Never ask the registry.
    Never,
}

impl std::str::FromStr for PullPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "new" => Ok(PullPolicy::New),
            "update" => Ok(PullPolicy::Update),
            "never" => Ok(PullPolicy::Never),
            _ => Err(format!(
                "invalid pull policy {s:?}; use \"new\", \"update\" or \"never\""
            )),
        }
    }
}

/// Where download progress is reported.
/// A size as rkt printed sizes in progress and listings: go-humanize's IBytes (`82 MiB`,
/// `4.5 KiB`, `9 B`).
pub fn ibytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 10 {
        return format!("{n} B");
    }
    let e = ((n as f64).ln() / 1024f64.ln()).floor() as usize;
    let e = e.min(UNITS.len() - 1);
    let val = ((n as f64) / 1024f64.powi(e as i32) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1} {}", UNITS[e])
    } else {
        format!("{val:.0} {}", UNITS[e])
    }
}

pub trait Progress: Send + Sync {
    fn start(&self, what: &str, total: Option<u64>);
    fn advance(&self, what: &str, bytes: u64);
    fn finish(&self, what: &str);
    /// A download continues where an interrupted one stopped.
    fn resumed(&self, _what: &str, _offset: u64) {}
    /// Something an operator should know about where an image comes from: where a short
    /// name resolved to, which mirror serves it, a mirror that failed.
    fn note(&self, _message: &str) {}
    /// `--debug`: what is being done, step by step (the library prints nothing itself).
    fn debug(&self, _message: &str) {}
}

pub struct NoProgress;
impl Progress for NoProgress {
    fn start(&self, _: &str, _: Option<u64>) {}
    fn advance(&self, _: &str, _: u64) {}
    fn finish(&self, _: &str) {}
}

pub struct Fetcher {
    pub store: Arc<Store>,
    pub credentials: Credentials,
    /// Mirrors and the default registry of short names (`registries.d`).
    pub registries: Registries,
    pub options: registry::Options,
    pub policy: PullPolicy,
    pub progress: Arc<dyn Progress>,
    /// Downloads at once, per image.
    pub parallel: usize,
    /// `--debug`: say on stderr what is being done.
    pub debug: bool,
    /// The keys ACI signatures are checked against.
    pub keystore: crate::trust::Keystore,
    /// Check ACI signatures (off with `--insecure-options=image`).
    pub verify: bool,
    /// Credentials a registry refuses are dropped and the fetch tried again anonymously
    /// (Nomad's `auth_soft_fail`), for public images behind a shared configuration.
    pub auth_soft_fail: bool,
    /// `--trust-keys-from-https`: trust the keys an ACI's discovery publishes over HTTPS
    /// when none is trusted for its name.
    pub trust_keys_from_https: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Index {
    manifests: Vec<IndexEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexEntry {
    digest: String,
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    architecture: String,
    os: String,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    digest: String,
    size: Option<u64>,
}

impl Fetcher {
    fn debug(&self, msg: impl FnOnce() -> String) {
        if self.debug {
            self.progress.debug(&format!("fetch: {}", msg()));
        }
    }

    /// Fetches one image and returns its ID (`sha512-` and 64 hex digits).
    pub async fn fetch(&self, image: &str) -> Result<String> {
        self.fetch_image(image, None).await
    }

    /// Fetches any image argument: a Docker image, an image ID in the store, or an ACI (a
    /// file, a URL or an appc name), checked against `signature` if given (`--signature`).
    pub async fn fetch_image(
        &self,
        image: &str,
        signature: Option<&std::path::Path>,
    ) -> Result<String> {
        match classify(image) {
            ImageArg::Docker | ImageArg::ShortName => {
                let reference = self.resolve(image)?;
                self.fetch_reference(&reference).await
            }
            ImageArg::ImageId => Ok(self.store.resolve(image)?.id),
            ImageArg::Other => self.fetch_aci(image, signature).await,
        }
    }

    /// The Docker reference an image argument names; where a short name went is said
    /// through [`Progress::note`].
    pub fn resolve(&self, image: &str) -> Result<Reference> {
        let reference = self.registries.reference(image)?;
        if classify(image) == ImageArg::ShortName {
            self.progress
                .note(&self.registries.describe_short(image, &reference));
        }
        Ok(reference)
    }

    /// Where `reference` can come from, in the order to try: the mirrors of its registry,
    /// then the registry itself (unless `mirrorsOnly`).
    pub fn sources(&self, reference: &Reference) -> Vec<Endpoint> {
        let settings = self.registries.settings(&reference.registry);
        let mut sources: Vec<Endpoint> = settings
            .into_iter()
            .flat_map(|s| &s.mirrors)
            .map(|m| Endpoint::mirror(m, reference, &self.options))
            .collect();
        if !settings.is_some_and(|s| s.mirrors_only) {
            sources.push(Endpoint::registry(reference, &self.options));
        }
        sources
    }

    /// Fetches the image `reference` names and returns its ID.
    pub async fn fetch_reference(&self, reference: &Reference) -> Result<String> {
        if self.policy != PullPolicy::Update {
            let stored = self.store.find_docker(reference)?;
            match (stored, self.policy) {
                (Some(info), _) => return Ok(info.id),
                (None, PullPolicy::Never) => return Err(Error::not_found(format!(
                    "image {reference} is not in the store and --pull-policy=never forbids fetching it; fetch it first or use --pull-policy=new"
                ))),
                _ => {}
            }
        }
        // The first source that serves the manifest serves the image: whatever it sends is
        // verified against the digests, whichever source it is.
        let sources = self.sources(reference);
        let mut failed: Vec<String> = Vec::new();
        for (i, source) in sources.iter().enumerate() {
            match self.manifest_from(source, reference).await {
                Ok((registry, manifest)) => {
                    if source.mirror {
                        self.progress
                            .note(&format!("fetching {reference} from {}", source.what));
                    }
                    return self.fetch_from(registry, reference, manifest).await;
                }
                Err(e) if i + 1 < sources.len() => {
                    self.progress.note(&format!(
                        "{} failed for {reference}: {e:#}; trying {}",
                        source.what,
                        sources[i + 1].what
                    ));
                    failed.push(format!("{} failed ({e:#})", source.what));
                }
                Err(e) => {
                    if self
                        .registries
                        .settings(&reference.registry)
                        .is_some_and(|s| s.mirrors_only)
                    {
                        failed.push(format!(
                            "registry {} itself is not tried (mirrorsOnly in registries.d)",
                            reference.registry
                        ));
                    }
                    return Err(if failed.is_empty() {
                        e
                    } else {
                        e.context(format!(
                            "no source could serve {reference}: {}; the last, {}, said",
                            failed.join("; "),
                            source.what
                        ))
                    });
                }
            }
        }
        Err(Error::config(format!(
            "no source to fetch {reference} from"
        )))
    }

    /// Connects to one source and resolves the image's manifest for this platform there.
    async fn manifest_from(
        &self,
        source: &Endpoint,
        reference: &Reference,
    ) -> Result<(Arc<Registry>, RawManifest)> {
        let credential = self.credentials.get(&source.host)?;
        let with_credential = credential.is_some();
        match self
            .connect_and_resolve(source, reference, credential)
            .await
        {
            Err(e)
                if self.auth_soft_fail
                    && with_credential
                    && e.failure() == Some(registry::Failure::Denied) =>
            {
                self.progress.note(&format!(
                    "{} refused the credentials ({e}); trying without them (auth_soft_fail)",
                    source.host
                ));
                self.connect_and_resolve(source, reference, None).await
            }
            other => other,
        }
    }

    async fn connect_and_resolve(
        &self,
        source: &Endpoint,
        reference: &Reference,
        credential: Option<crate::auth::Credential>,
    ) -> Result<(Arc<Registry>, RawManifest)> {
        let registry =
            Arc::new(Registry::connect(source, reference, credential, &self.options).await?);
        self.debug(|| format!("talking to {} ({})", registry.base_url(), source.what));
        let manifest = self.resolve_manifest(&registry, reference).await?;
        Ok((registry, manifest))
    }

    /// Downloads, renders and stores the image of `manifest` from `registry`.
    async fn fetch_from(
        &self,
        registry: Arc<Registry>,
        reference: &Reference,
        manifest: RawManifest,
    ) -> Result<String> {
        let id = digest::image_id(&manifest.bytes);
        self.debug(|| {
            format!(
                "{reference} is manifest {} ({}), image {id}",
                manifest.digest, manifest.media_type
            )
        });
        if self.store.has_image(&id) {
            self.debug(|| format!("image {id} is already in the store"));
            self.store.touch(&id)?;
            return Ok(id);
        }
        self.pull(&registry, reference, &manifest, &id)
            .await
            .with_context(|| format!("fetching {reference}"))?;
        Ok(id)
    }

    /// Follows an index or manifest list to the manifest for this host's platform.
    async fn resolve_manifest(&self, reg: &Registry, r: &Reference) -> Result<RawManifest> {
        let top = reg.manifest(r.manifest_reference()).await?;
        match top.media_type.as_str() {
            registry::MEDIA_OCI_INDEX | registry::MEDIA_DOCKER_LIST => {
                let index: Index = serde_json::from_slice(&top.bytes)
                    .with_context(|| format!("parsing the image index of {r}"))?;
                let entry = platform_entry(&index, r)?;
                let m = reg.manifest(&entry.digest).await?;
                match m.media_type.as_str() {
                    registry::MEDIA_OCI_MANIFEST | registry::MEDIA_DOCKER_MANIFEST => Ok(m),
                    other => refuse!("image {r}: index entry {} has unsupported media type {other:?}", entry.digest),
                }
            }
            registry::MEDIA_OCI_MANIFEST | registry::MEDIA_DOCKER_MANIFEST => Ok(top),
            other => refuse!(
                "image {r} has a manifest of unsupported media type {other:?}; supported are OCI manifests and indexes and Docker schema2 manifests and manifest lists"
            ),
        }
    }

    /// The image config, through the blob store like every other blob, so that concurrent
    /// fetches download it once. Read whole, so capped like a manifest.
    async fn config_blob(&self, reg: &Arc<Registry>, desc: &Descriptor) -> Result<Vec<u8>> {
        let limit = registry::MAX_MANIFEST_BYTES as u64;
        let size = desc.size.unwrap_or(0);
        if size > limit {
            refuse!(
                "image config {} is {size} bytes, over the {limit}-byte limit; refusing it",
                desc.digest
            );
        }
        let path = ensure_blob(&self.store, reg, &desc.digest, desc.size, &NoProgress).await?;
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        if bytes.len() as u64 > limit {
            refuse!(
                "image config {} is over the {limit}-byte limit; refusing it",
                desc.digest
            );
        }
        Ok(bytes)
    }

    /// Applies layers in order, each as soon as its download (and all before it) is done,
    /// into a staging directory. Returns it with the image lock held, and the digests of
    /// the files written.
    async fn render(
        &self,
        id: &str,
        layers: Vec<(String, Compression)>,
        mut done: tokio::sync::mpsc::UnboundedReceiver<(usize, Result<PathBuf>)>,
    ) -> Result<(PathBuf, store::Lock, crate::unpack::ContentHashes)> {
        let lock = {
            let (store, id) = (self.store.clone(), id.to_string());
            tokio::task::spawn_blocking(move || store.lock(&format!("image-{id}")))
                .await
                .map_err(joined)??
        };
        let staged = self
            .store
            .tmp_dir()
            .join(format!("render-{id}-{}", std::process::id()));
        // We hold the image lock, so anything staged under this name is an earlier crash's.
        crate::unpack::remove_tree(&staged)?;
        let result = async {
            let mut tree = Some(Tree::open(&staged.join("rootfs"))?);
            let mut ready: Vec<Option<PathBuf>> = vec![None; layers.len()];
            let mut next = 0;
            while next < layers.len() {
                let (i, res) = done
                    .recv()
                    .await
                    .ok_or_else(|| Error::failed("a layer download ended without a result"))?;
                ready[i] = Some(res?);
                while let Some(path) = ready.get_mut(next).and_then(Option::take) {
                    let (digest, c) = layers[next].clone();
                    let mut t = tree.take().expect("tree is returned after each layer");
                    let started = std::time::Instant::now();
                    let shown = digest.clone();
                    let (t, res) = tokio::task::spawn_blocking(move || {
                        let res = apply_blob(&mut t, &path, c)
                            .with_context(|| format!("applying layer {digest}"));
                        (t, res)
                    })
                    .await
                    .map_err(joined)?;
                    tree = Some(t);
                    res?;
                    self.debug(|| format!("applied layer {shown} in {:?}", started.elapsed()));
                    next += 1;
                }
            }
            let tree = tree.take().expect("tree is returned after each layer");
            Ok::<_, Error>(tree.into_content_hashes())
        }
        .await;
        match result {
            Ok(hashes) => Ok((staged, lock, hashes)),
            Err(e) => {
                let _ = crate::unpack::remove_tree(&staged);
                Err(e)
            }
        }
    }

    async fn pull(
        &self,
        reg: &Arc<Registry>,
        r: &Reference,
        raw: &RawManifest,
        id: &str,
    ) -> Result<()> {
        let manifest: Manifest =
            serde_json::from_slice(&raw.bytes).context("parsing the image manifest")?;
        let plan = layer_plan(&manifest)?;
        let config_bytes = self.config_blob(reg, &manifest.config).await?;
        let config: DockerImageConfig =
            serde_json::from_slice(&config_bytes).context("parsing the image config")?;
        let appc_manifest = appc::from_docker(
            &r.aci_name(),
            &config,
            &Provenance {
                // As docker2aci got it from rkt: the reference without the scheme.
                original_name: r.to_string().trim_start_matches("docker://"),
                registry: &r.registry,
                repository: &r.repository,
                tag: r.tag.as_deref(),
                config_digest: &manifest.config.digest,
                manifest_digest: &raw.digest,
            },
        )
        .map_err(|e| Error::refused(format!("converting the image config of {r} to appc: {e}")))?;

        // Start every download now; the render below consumes them in layer order.
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Result<PathBuf>)>();
        let sem = Arc::new(tokio::sync::Semaphore::new(self.parallel.max(1)));
        let downloads: Vec<_> = plan
            .iter()
            .enumerate()
            .map(|(i, (layer, _))| {
                let (store, progress, reg) =
                    (self.store.clone(), self.progress.clone(), reg.clone());
                let (layer, sem, tx) = (layer.clone(), sem.clone(), tx.clone());
                tokio::spawn(async move {
                    let res = match sem.acquire().await {
                        Ok(_permit) => {
                            ensure_blob(&store, &reg, &layer.digest, layer.size, &*progress).await
                        }
                        Err(e) => Err(Error::failed(e.to_string())),
                    };
                    let _ = tx.send((i, res));
                })
            })
            .collect();
        drop(tx);
        let layers: Vec<(String, Compression)> =
            plan.iter().map(|(l, c)| (l.digest.clone(), *c)).collect();
        let rendered = self.render(id, layers, rx).await;
        if rendered.is_err() {
            // Stop what is still downloading; partial blobs stay for the next fetch to resume.
            for d in &downloads {
                d.abort();
            }
        }
        for d in downloads {
            let _ = d.await;
        }
        let (staged, _lock, hashes) = rendered?;

        if self.store.has_image(id) {
            // Another fetch finished the same image while we rendered.
            crate::unpack::remove_tree(&staged)?;
            return Ok(());
        }
        let blob_size: u64 =
            manifest.layers.iter().filter_map(|l| l.size).sum::<u64>() + config_bytes.len() as u64;
        let info = ImageInfo {
            id: id.to_string(),
            name: appc_manifest.name.clone(),
            version: r.tag.clone(),
            source: r.to_string(),
            manifest_digest: raw.digest.clone(),
            config_digest: manifest.config.digest.clone(),
            layers: manifest.layers.iter().map(|l| l.digest.clone()).collect(),
            import_time: store::now_nanos(),
            last_used: store::now_nanos(),
            size: blob_size + store::tree_size(&staged.join("rootfs")),
            dependencies: Vec::new(),
        };
        crate::verify::record(&staged, &hashes)?;
        let to_json = |r: serde_json::Result<Vec<u8>>| r.map_err(|e| Error::failed(e.to_string()));
        std::fs::write(
            staged.join("manifest"),
            to_json(serde_json::to_vec(&appc_manifest))?,
        )?;
        std::fs::write(
            staged.join("info.json"),
            to_json(serde_json::to_vec_pretty(&info))?,
        )?;
        self.store.commit(&staged, id)
    }
}

/// The entry of an index for this host's platform.
fn platform_entry<'a>(index: &'a Index, r: &Reference) -> Result<&'a IndexEntry> {
    let (os, arch) = host_platform();
    index
        .manifests
        .iter()
        .find(|m| {
            m.platform
                .as_ref()
                .is_some_and(|p| p.os == os && p.architecture == arch)
        })
        .ok_or_else(|| {
            let have: Vec<String> = index
                .manifests
                .iter()
                .filter_map(|m| m.platform.as_ref())
                .map(|p| format!("{}/{}", p.os, p.architecture))
                .collect();
            Error::refused(format!(
                "image {r} has no variant for this host's platform {os}/{arch} (it has: {})",
                have.join(", ")
            ))
        })
}

/// What a manifest asks to download and apply: its layers with their compression, every
/// digest checked for form before it goes into a URL or a store path.
fn layer_plan(manifest: &Manifest) -> Result<Vec<(Descriptor, Compression)>> {
    let mut plan = Vec::new();
    for l in &manifest.layers {
        crate::reference::validate_digest(&l.digest)
            .map_err(|e| Error::refused(format!("layer: {e}")))?;
        let c = Compression::from_media_type(&l.media_type).ok_or_else(|| {
            Error::refused(format!(
                "layer {} has unknown media type {:?}; supported are OCI tar, tar+gzip, tar+zstd and Docker rootfs.diff.tar.gzip layers",
                l.digest,
                l.media_type
            ))
        })?;
        plan.push((l.clone(), c));
    }
    crate::reference::validate_digest(&manifest.config.digest)
        .map_err(|e| Error::refused(format!("config: {e}")))?;
    Ok(plan)
}

/// Entry points for the fuzz targets (`fuzz/`): a registry's manifest and index answers and
/// an image config, through the same parsing and checks a fetch uses. Not an API.
#[doc(hidden)]
pub mod fuzzing {
    use super::*;

    /// A manifest or index answer, as [`Fetcher`] reads it once its media type is known.
    pub fn manifest_answer(bytes: &[u8], content_type: Option<String>) -> Result<()> {
        let r = Reference::parse("docker://registry.test/fuzz:latest").expect("a valid reference");
        match registry::fuzzing::media_type(bytes, content_type).as_str() {
            registry::MEDIA_OCI_INDEX | registry::MEDIA_DOCKER_LIST => {
                let index: Index = serde_json::from_slice(bytes)?;
                let entry = platform_entry(&index, &r)?;
                crate::reference::validate_digest(&entry.digest).map_err(Error::refused)?;
            }
            _ => {
                let manifest: Manifest = serde_json::from_slice(bytes)?;
                layer_plan(&manifest)?;
            }
        }
        Ok(())
    }

    /// An image config, converted to the appc image manifest stored with the image; that
    /// manifest must read back as what was written (`rkt image cat-manifest`, pods).
    pub fn image_config(bytes: &[u8]) -> Result<()> {
        let config: DockerImageConfig = serde_json::from_slice(bytes)?;
        let prov = Provenance {
            original_name: "docker://registry.test/fuzz:latest",
            registry: "registry.test",
            repository: "fuzz",
            tag: Some("latest"),
            config_digest:
                "sha256:0000000000000000000000000000000000000000000000000000000000000000",
            manifest_digest:
                "sha256:0000000000000000000000000000000000000000000000000000000000000000",
        };
        let m = appc::from_docker("registry.test/fuzz", &config, &prov).map_err(Error::refused)?;
        let written = serde_json::to_vec(&m)?;
        let read: appc::ImageManifest = serde_json::from_slice(&written)?;
        assert_eq!(read, m, "the stored appc manifest does not read back");
        Ok(())
    }
}

/// Decompresses a verified blob and applies it to the tree.
fn apply_blob(tree: &mut Tree, path: &std::path::Path, c: Compression) -> Result<()> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader = std::io::BufReader::with_capacity(256 * 1024, file);
    let decoder = c.decoder(reader).context("starting decompression")?;
    tree.apply_layer(decoder)
}

/// Makes sure the blob is in the store, verified: downloads it (resuming a partial download
/// left by an earlier, interrupted fetch) unless it is there already. Concurrent fetches of the
/// same blob serialize on its lock, so each blob is downloaded once.
async fn ensure_blob(
    store: &Arc<Store>,
    reg: &Registry,
    digest: &str,
    size: Option<u64>,
    progress: &dyn Progress,
) -> Result<PathBuf> {
    let hex = digest::hex_part(digest).to_string();
    let lock = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.lock(&format!("blob-{hex}")))
            .await
            .map_err(joined)??
    };
    let final_path = store.blob_path(digest);
    if final_path.exists() {
        return Ok(final_path);
    }
    let partial = store.partial_blob_path(digest);
    let short = &digest::hex_part(digest)[..12];
    let what = format!("sha256:{short}");
    progress.start(&what, size);
    let res = download(reg, digest, size, &partial, progress, &what).await;
    progress.finish(&what);
    res?;
    std::fs::rename(&partial, &final_path)
        .with_context(|| format!("moving {} into place", partial.display()))?;
    drop(lock);
    Ok(final_path)
}

async fn download(
    reg: &Registry,
    digest: &str,
    size: Option<u64>,
    partial: &std::path::Path,
    progress: &dyn Progress,
    what: &str,
) -> Result<()> {
    let mut file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(partial)
        .with_context(|| format!("opening {}", partial.display()))?;
    // Hash what an earlier attempt left, so that we can continue where it stopped.
    let mut hasher = Sha256::new();
    let mut offset = hash_existing(&mut file, &mut hasher)?;
    if size.is_some_and(|s| offset > s) {
        file.set_len(0)?;
        hasher = Sha256::new();
        offset = 0;
    }
    if offset > 0 {
        progress.resumed(what, offset);
        progress.advance(what, offset);
    }
    let mut attempts_left = 5u32;
    loop {
        if size == Some(offset) && offset > 0 {
            break;
        }
        let (resp, ranged) = reg.blob(digest, offset).await?;
        if offset > 0 && !ranged {
            file.set_len(0)?;
            file.rewind()?;
            hasher = Sha256::new();
            offset = 0;
        }
        let mut stream = resp.bytes_stream();
        let mut broken = None;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => {
                    file.write_all(&bytes).context("writing the blob")?;
                    hasher.update(&bytes);
                    offset += bytes.len() as u64;
                    progress.advance(what, bytes.len() as u64);
                    if size.is_some_and(|s| offset > s) {
                        refuse!(
                            "blob {digest} is longer than the {} bytes its manifest says",
                            size.unwrap()
                        );
                    }
                }
                Err(e) => {
                    broken = Some(e);
                    break;
                }
            }
        }
        match broken {
            None if size.is_none_or(|s| s == offset) => break,
            None => broken_retry(
                &mut attempts_left,
                format!(
                    "connection closed at byte {offset} of {}",
                    size.unwrap_or(0)
                ),
            )?,
            Some(e) => broken_retry(&mut attempts_left, crate::error::chain(&e))?,
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    file.sync_data().ok();
    let got = format!("sha256:{}", hex::encode(hasher.finalize()));
    if got != digest {
        drop(file);
        std::fs::remove_file(partial).ok();
        refuse!(
            "blob {digest} does not match its digest (got {got}); the registry's copy is corrupt or was tampered with"
        );
    }
    Ok(())
}

/// A download that broke off `err` is tried again, a few times; then the registry is
/// taken to be unavailable for now.
fn broken_retry(attempts_left: &mut u32, err: String) -> Result<()> {
    if *attempts_left == 0 {
        return Err(Error::registry(
            Failure::Unavailable,
            format!("download kept breaking off; giving up: {err}"),
        ));
    }
    *attempts_left -= 1;
    Ok(())
}

fn hash_existing(file: &mut std::fs::File, hasher: &mut Sha256) -> Result<u64> {
    file.rewind()?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok(total)
}

/// A blocking task that panicked or was cancelled.
fn joined(e: tokio::task::JoinError) -> Error {
    Error::failed(e.to_string())
}

/// This host's platform in OCI terms.
pub fn host_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        other => other,
    };
    ("linux", arch)
}
