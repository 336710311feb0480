//! The wizard's "new cluster" targets: a cluster Ferry creates before it restores into
//! it. [`NewCluster`] has one variant per cloud (EKS and AKS; another cloud is one more
//! variant with its form, which makes that cloud's `ClusterRequest`). A form is
//! pre-filled from the source's cloud envelope (a capture's, or a live source's fetched
//! when the wizard opens) when it comes from the same cloud, and checked in place;
//! nothing is created until the wizard's last step is confirmed. The forms share their
//! key handling (`edit`).

use ferry_providers::aks::{AksRequest, AksSpec, Azure, AzureSubscription};
use ferry_providers::cloud::{Clouds, ClusterRequest};
use ferry_providers::eks::{Aws, AwsAccount, ClusterSpec, EksRequest, NodegroupSpec};
use ferry_providers::probe::StorageClassInfo;
use ferry_providers::spec::{Field, SpecError, check_version, parse_version};

/// A cluster to create, by cloud.
#[derive(Debug, Clone)]
pub enum NewCluster {
    Eks(EksForm),
    Aks(AksForm),
}

/// The source's version: the envelope's, else the server's.
fn source_version(envelope: Option<&serde_json::Value>, server_version: &str) -> Option<String> {
    envelope
        .and_then(|e| e["version"].as_str().map(str::to_string))
        .or_else(|| (!server_version.is_empty()).then(|| server_version.to_string()))
}

/// A form's key: ↑/↓ move between `rows`, ←/→/space on row 0 cycle through `choices`
/// places; what Backspace (`Some(None)`) or a character asks of the row's text field is
/// returned for [`apply`].
fn edit(
    code: crossterm::event::KeyCode,
    sel: &mut usize,
    rows: usize,
    choice: &mut usize,
    choices: usize,
) -> Option<Option<char>> {
    use crossterm::event::KeyCode;
    match code {
        KeyCode::Up => *sel = sel.saturating_sub(1),
        KeyCode::Down => *sel = (*sel + 1).min(rows.saturating_sub(1)),
        KeyCode::Left | KeyCode::Right | KeyCode::Char(' ') if *sel == 0 && choices > 0 => {
            *choice = if code == KeyCode::Left {
                (*choice + choices - 1) % choices
            } else {
                (*choice + 1) % choices
            };
        }
        KeyCode::Backspace => return Some(None),
        KeyCode::Char(c) => return Some(Some(c)),
        _ => {}
    }
    None
}

/// Applies what [`edit`] asked for to a text field.
fn apply(field: Option<&mut String>, what: Option<char>) {
    if let Some(f) = field {
        match what {
            Some(c) => f.push(c),
            None => {
                f.pop();
            }
        }
    }
}

/// A request error in the form's words: `rows` are the labels of the rows that set the
/// field (none when the form does not show it: it came from the captured cluster, and
/// `ferry cluster create <cloud>` sets it).
fn advice(e: &SpecError, rows: &[&str], cloud: &str) -> String {
    let Some((last, first)) = rows.split_last() else {
        return format!(
            "{}: this form does not show {} (it comes from the captured cluster); create the cluster with `ferry cluster create {cloud}` to set it",
            e.problem, e.field
        );
    };
    let quoted = |l: &&str| format!("“{l}”");
    let mut names = first.iter().map(quoted).collect::<Vec<_>>().join(", ");
    if !names.is_empty() {
        names.push_str(" and ");
    }
    names.push_str(&quoted(last));
    let commas = if e.field == Field::Subnets {
        ", separated by commas"
    } else {
        ""
    };
    format!("{}: set {names} to {}{commas}", e.problem, e.want)
}

impl NewCluster {
    /// The clusters a wizard offers to create, one per cloud with a linked account or
    /// subscription, named `name` and pre-filled from the source's `envelope` (what it
    /// says of its own cloud; of another, its version alone) and `server_version`.
    pub fn offered(
        clouds: &Clouds,
        envelope: Option<&serde_json::Value>,
        server_version: &str,
        name: &str,
    ) -> Vec<NewCluster> {
        let aws = clouds.get::<Aws>().map_or(&[][..], |c| &c.accounts);
        let azure = clouds.get::<Azure>().map_or(&[][..], |c| &c.subscriptions);
        let mut out = Vec::new();
        if !aws.is_empty() {
            // An AKS envelope says nothing an EKS form can use but the version.
            let eks_envelope = envelope.filter(|e| e["kind"].as_str() != Some("aks"));
            out.push(NewCluster::Eks(EksForm::new(
                aws,
                eks_envelope,
                server_version,
                name,
            )));
        }
        if !azure.is_empty() {
            out.push(NewCluster::Aks(AksForm::new(
                azure,
                envelope,
                server_version,
                name,
            )));
        }
        out
    }

    /// Takes `other`'s source version when this form has none yet: a form the user has
    /// edited before the source's version arrived still may not go below it.
    pub fn adopt_floor(&mut self, other: &NewCluster) {
        let (mine, theirs) = match (self, other) {
            (NewCluster::Eks(a), NewCluster::Eks(b)) => (&mut a.source_version, &b.source_version),
            (NewCluster::Aks(a), NewCluster::Aks(b)) => (&mut a.source_version, &b.source_version),
            _ => return,
        };
        if mine.is_none() {
            mine.clone_from(theirs);
        }
    }

    /// Whether the user has changed a field or a choice of the form (then it is kept as
    /// typed when the source's envelope arrives).
    pub fn edited(&self) -> bool {
        match self {
            NewCluster::Eks(f) => f.edited,
            NewCluster::Aks(f) => f.edited,
        }
    }

    /// The entry of the wizard's target list.
    pub fn label(&self) -> &'static str {
        match self {
            NewCluster::Eks(_) => "new EKS cluster…",
            NewCluster::Aks(_) => "new AKS cluster…",
        }
    }

    /// The form's rows: (label, value as shown).
    pub fn rows(&self) -> Vec<(String, String)> {
        match self {
            NewCluster::Eks(f) => f.rows(),
            NewCluster::Aks(f) => f.rows(),
        }
    }

    pub fn selected(&self) -> usize {
        match self {
            NewCluster::Eks(f) => f.sel,
            NewCluster::Aks(f) => f.sel,
        }
    }

    pub fn select(&mut self, i: usize) {
        match self {
            NewCluster::Eks(f) => f.sel = i.min(EKS_ROWS.len() - 1),
            NewCluster::Aks(f) => f.sel = i.min(f.rows().len().saturating_sub(1)),
        }
    }

    /// A key on the form: ↑/↓ move, ←/→ choose, typing edits.
    pub fn key(&mut self, code: crossterm::event::KeyCode) {
        let before = self.rows();
        match self {
            NewCluster::Eks(f) => f.key(code),
            NewCluster::Aks(f) => f.key(code),
        }
        if self.rows() != before {
            match self {
                NewCluster::Eks(f) => f.edited = true,
                NewCluster::Aks(f) => f.edited = true,
            }
        }
    }

    /// What is wrong with the form, if anything.
    pub fn validate(&self) -> Option<String> {
        match self {
            NewCluster::Eks(f) => f.spec().err(),
            NewCluster::Aks(f) => f.spec().err(),
        }
    }

    /// The new cluster's name.
    pub fn name(&self) -> &str {
        match self {
            NewCluster::Eks(f) => &f.name,
            NewCluster::Aks(f) => &f.name,
        }
    }

    /// The storage classes it will have (what the class mapping may choose).
    pub fn classes(&self) -> Vec<StorageClassInfo> {
        match self {
            NewCluster::Eks(f) => f.base.storage_classes(),
            NewCluster::Aks(f) => f.base.storage_classes(),
        }
    }

    /// The cluster the form describes, for the provider to create, or what is wrong
    /// with the form.
    pub fn request(&self) -> Result<Box<dyn ClusterRequest>, String> {
        Ok(match self {
            NewCluster::Eks(f) => {
                let (account, region, spec) = f.spec()?;
                Box::new(EksRequest {
                    account,
                    region,
                    spec,
                    source_version: f.source_version.clone(),
                })
            }
            NewCluster::Aks(f) => {
                let (subscription, spec) = f.spec()?;
                Box::new(AksRequest {
                    subscription,
                    spec,
                    source_version: f.source_version.clone(),
                })
            }
        })
    }

    /// Lines describing what will be made (the wizard's last step).
    pub fn summary(&self) -> Vec<String> {
        match self {
            NewCluster::Eks(f) => match f.spec() {
                Ok((account, region, spec)) => {
                    let mut out = vec![format!(
                        "create EKS cluster {} in {} ({}), Kubernetes {}",
                        spec.name,
                        region,
                        account.label(),
                        spec.version
                    )];
                    for ng in &spec.nodegroups {
                        out.push(format!(
                            "  node group {}: {} × {} (min {}, max {})",
                            ng.name,
                            ng.desired_size,
                            ng.instance_types.join(","),
                            ng.min_size,
                            ng.max_size
                        ));
                    }
                    if !spec.addons.is_empty() {
                        out.push(format!("  add-ons: {}", spec.addons.join(", ")));
                    }
                    if let Some(c) = &spec.storage_class {
                        out.push(format!("  default storage class {c}"));
                    }
                    out
                }
                Err(e) => vec![e],
            },
            NewCluster::Aks(f) => match f.spec() {
                Ok((sub, spec)) => {
                    let mut out = vec![format!(
                        "create AKS cluster {} in {} / {} ({}), Kubernetes {}",
                        spec.name,
                        spec.resource_group,
                        spec.location,
                        sub.label(),
                        spec.version
                    )];
                    for p in &spec.node_pools {
                        let scale = match (p.enable_auto_scaling, p.min_count, p.max_count) {
                            (true, Some(min), Some(max)) => format!(" (autoscaling {min}–{max})"),
                            _ => String::new(),
                        };
                        out.push(format!(
                            "  node pool {} ({}): {} × {}{scale}",
                            p.name, p.mode, p.count, p.vm_size
                        ));
                    }
                    out.push("  default storage class managed-csi".into());
                    out
                }
                Err(e) => vec![e],
            },
        }
    }
}

/// The EKS form's rows.
pub const EKS_ROWS: [&str; 10] = [
    "account / region",
    "name",
    "Kubernetes version",
    "cluster role ARN",
    "subnets",
    "node role ARN",
    "instance type",
    "nodes min",
    "nodes max",
    "nodes desired",
];

/// The EKS form: each field as typed.
#[derive(Debug, Clone)]
pub struct EksForm {
    /// Every (account, region) pair of the linked accounts.
    pub places: Vec<(AwsAccount, String)>,
    pub place: usize,
    pub name: String,
    pub version: String,
    pub role_arn: String,
    /// Comma-separated.
    pub subnets: String,
    pub node_role: String,
    pub instance_type: String,
    pub min: String,
    pub max: String,
    pub desired: String,
    /// The source's version: the floor for `version`.
    pub source_version: Option<String>,
    /// What the envelope (or the defaults) gave, for everything the form does not show
    /// (tags, add-ons, more node groups, labels...).
    pub base: ClusterSpec,
    pub sel: usize,
    /// Whether the user has changed anything ([`NewCluster::edited`]).
    pub edited: bool,
}

impl EksForm {
    /// A form for the linked `accounts`, pre-filled from a capture's `envelope` (when
    /// its source was an EKS cluster) and its source's `server_version`.
    pub fn new(
        accounts: &[AwsAccount],
        envelope: Option<&serde_json::Value>,
        server_version: &str,
        name: &str,
    ) -> EksForm {
        let places: Vec<(AwsAccount, String)> = accounts
            .iter()
            .flat_map(|a| a.regions.iter().map(move |r| (a.clone(), r.clone())))
            .collect();
        let mut base = match envelope {
            Some(env) => ClusterSpec::from_envelope(env, name),
            None => ClusterSpec::new(name),
        };
        let source_version = source_version(envelope, server_version);
        if base.version.is_empty()
            && let Some((maj, min)) = source_version.as_deref().and_then(parse_version)
        {
            base.version = format!("{maj}.{min}");
        }
        if base.storage_class.is_none() {
            base.storage_class = Some("gp3".into());
        }
        if base.nodegroups.is_empty() {
            base.nodegroups.push(NodegroupSpec {
                name: "general".into(),
                instance_types: vec!["m6i.large".into()],
                min_size: 1,
                max_size: 3,
                desired_size: 2,
                ..NodegroupSpec::default()
            });
        }
        // The envelope's region, when it is one of the linked ones.
        let place = envelope
            .and_then(|e| e["region"].as_str())
            .and_then(|r| places.iter().position(|(_, pr)| pr == r))
            .unwrap_or(0);
        let ng = &base.nodegroups[0];
        EksForm {
            place,
            name: name.into(),
            version: base.version.clone(),
            role_arn: base.role_arn.clone(),
            subnets: base.subnet_ids.join(","),
            node_role: ng.node_role.clone(),
            instance_type: ng.instance_types.first().cloned().unwrap_or_default(),
            min: ng.min_size.to_string(),
            max: ng.max_size.to_string(),
            desired: ng.desired_size.to_string(),
            places,
            source_version,
            base,
            sel: 0,
            edited: false,
        }
    }

    fn rows(&self) -> Vec<(String, String)> {
        let place = self
            .places
            .get(self.place)
            .map(|(a, r)| format!("{} / {r}", a.label()))
            .unwrap_or_else(|| "no AWS account is linked (aws: in the settings)".into());
        let values = [
            place,
            self.name.clone(),
            self.version.clone(),
            self.role_arn.clone(),
            self.subnets.clone(),
            self.node_role.clone(),
            self.instance_type.clone(),
            self.min.clone(),
            self.max.clone(),
            self.desired.clone(),
        ];
        EKS_ROWS.iter().map(|l| l.to_string()).zip(values).collect()
    }

    fn field(&mut self, i: usize) -> Option<&mut String> {
        Some(match i {
            1 => &mut self.name,
            2 => &mut self.version,
            3 => &mut self.role_arn,
            4 => &mut self.subnets,
            5 => &mut self.node_role,
            6 => &mut self.instance_type,
            7 => &mut self.min,
            8 => &mut self.max,
            9 => &mut self.desired,
            _ => return None,
        })
    }

    fn key(&mut self, code: crossterm::event::KeyCode) {
        let n = self.places.len();
        if let Some(what) = edit(code, &mut self.sel, EKS_ROWS.len(), &mut self.place, n) {
            apply(self.field(self.sel), what);
        }
    }

    /// The account, region and spec the form describes, or what is wrong with it (the
    /// version older than the source's included).
    pub fn spec(&self) -> Result<(AwsAccount, String, ClusterSpec), String> {
        let (account, region) = self
            .places
            .get(self.place)
            .cloned()
            .ok_or("no AWS account is linked: add one under aws: in the settings")?;
        let size = |what: &str, v: &str| {
            v.trim()
                .parse::<i32>()
                .map_err(|_| format!("nodes {what}: {v:?} is not a whole number"))
        };
        let mut spec = self.base.clone();
        spec.name = self.name.trim().to_string();
        spec.version = self.version.trim().to_string();
        spec.role_arn = self.role_arn.trim().to_string();
        spec.subnet_ids = self
            .subnets
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if let Some(ng) = spec.nodegroups.first_mut() {
            if self.subnets.trim() != self.base.subnet_ids.join(",") {
                ng.subnets.clear();
            }
            ng.node_role = self.node_role.trim().to_string();
            ng.instance_types = vec![self.instance_type.trim().to_string()];
            ng.min_size = size("min", &self.min)?;
            ng.max_size = size("max", &self.max)?;
            ng.desired_size = size("desired", &self.desired)?;
            if self.instance_type.trim().is_empty() {
                return Err("give the node group's instance type (e.g. m6i.large)".into());
            }
        }
        // The version first: it is pre-filled, so a change to it is what just happened.
        if let Some(src) = &self.source_version {
            check_version(&spec.version, src).map_err(|e| self.advice(&e))?;
        }
        spec.validate().map_err(|e| self.advice(&e))?;
        Ok((account, region, spec))
    }

    /// A request error in this form's words (see [`advice`]).
    fn advice(&self, e: &SpecError) -> String {
        // The form edits the first node group; the others keep the envelope's settings.
        let shown_group = e.pool.is_none()
            || e.pool.as_deref() == self.base.nodegroups.first().map(|n| n.name.as_str());
        let rows: &[usize] = match e.field {
            Field::Name => &[1],
            Field::Version => &[2],
            Field::RoleArn => &[3],
            Field::Subnets => &[4],
            Field::NodeRole if shown_group => &[5],
            Field::NodeCounts if shown_group => &[7, 8, 9],
            _ => &[],
        };
        let labels: Vec<&str> = rows.iter().map(|&i| EKS_ROWS[i]).collect();
        advice(e, &labels, "eks")
    }
}

/// A node pool's fields as typed (min/max only when the pool autoscales).
#[derive(Debug, Clone)]
pub struct PoolFields {
    pub vm_size: String,
    pub count: String,
    pub min: String,
    pub max: String,
}

/// What a row of the AKS form edits.
#[derive(Debug, Clone, Copy, PartialEq)]
enum AksRow {
    Subscription,
    ResourceGroup,
    Location,
    Name,
    Version,
    VmSize(usize),
    Count(usize),
    Min(usize),
    Max(usize),
}

/// The AKS form: each field as typed; one set of rows per node pool.
#[derive(Debug, Clone)]
pub struct AksForm {
    /// The linked subscriptions.
    pub subs: Vec<AzureSubscription>,
    pub sub: usize,
    pub resource_group: String,
    pub location: String,
    pub name: String,
    pub version: String,
    /// One per `base.node_pools`.
    pub pools: Vec<PoolFields>,
    /// The source's version: the floor for `version`.
    pub source_version: Option<String>,
    /// What the envelope (or the defaults) gave, for everything the form does not show
    /// (pool names and modes, zones, labels, taints, network profile, tags...).
    pub base: AksSpec,
    pub sel: usize,
    /// Whether the user has changed anything ([`NewCluster::edited`]).
    pub edited: bool,
}

impl AksForm {
    /// A form for the linked `subs`, pre-filled from a capture's `envelope` when its
    /// source was an AKS cluster (`kind: "aks"`), else with one System pool of two
    /// `Standard_D4s_v5` nodes in `westeurope`.
    pub fn new(
        subs: &[AzureSubscription],
        envelope: Option<&serde_json::Value>,
        server_version: &str,
        name: &str,
    ) -> AksForm {
        let aks_envelope = envelope.filter(|e| e["kind"].as_str() == Some("aks"));
        let source_version = source_version(envelope, server_version);
        let floor = source_version
            .as_deref()
            .and_then(parse_version)
            .map(|(a, b)| format!("{a}.{b}"))
            .unwrap_or_default();
        let mut base = match aks_envelope {
            Some(env) => AksSpec::from_envelope(env, name),
            None => AksSpec::new(name, &format!("{name}-rg"), "westeurope", &floor),
        };
        if base.version.is_empty() {
            base.version = floor;
        }
        if base.resource_group.is_empty() {
            base.resource_group = format!("{name}-rg");
        }
        if base.location.is_empty() {
            base.location = "westeurope".into();
        }
        if base.node_pools.is_empty() {
            base.node_pools = AksSpec::new(name, "", "", "").node_pools;
        }
        // The envelope's subscription, when it is one of the linked ones.
        let sub = aks_envelope
            .and_then(|e| e["id"].as_str())
            .and_then(|id| id.split('/').nth(2))
            .and_then(|s| subs.iter().position(|l| l.id.eq_ignore_ascii_case(s)))
            .unwrap_or(0);
        let pools = base
            .node_pools
            .iter()
            .map(|p| PoolFields {
                vm_size: p.vm_size.clone(),
                count: p.count.to_string(),
                min: p.min_count.map(|n| n.to_string()).unwrap_or_default(),
                max: p.max_count.map(|n| n.to_string()).unwrap_or_default(),
            })
            .collect();
        AksForm {
            subs: subs.to_vec(),
            sub,
            resource_group: base.resource_group.clone(),
            location: base.location.clone(),
            name: name.into(),
            version: base.version.clone(),
            pools,
            source_version,
            base,
            sel: 0,
            edited: false,
        }
    }

    fn layout(&self) -> Vec<AksRow> {
        let mut out = vec![
            AksRow::Subscription,
            AksRow::ResourceGroup,
            AksRow::Location,
            AksRow::Name,
            AksRow::Version,
        ];
        for (i, p) in self.base.node_pools.iter().enumerate() {
            out.push(AksRow::VmSize(i));
            out.push(AksRow::Count(i));
            if p.enable_auto_scaling {
                out.push(AksRow::Min(i));
                out.push(AksRow::Max(i));
            }
        }
        out
    }

    /// The label of a row, as [`Self::rows`] shows it.
    fn label(&self, row: AksRow) -> String {
        let pool = |i: usize| {
            self.base
                .node_pools
                .get(i)
                .map(|p| p.name.as_str())
                .unwrap_or("")
        };
        match row {
            AksRow::Subscription => "subscription".into(),
            AksRow::ResourceGroup => "resource group".into(),
            AksRow::Location => "location".into(),
            AksRow::Name => "name".into(),
            AksRow::Version => "Kubernetes version".into(),
            AksRow::VmSize(i) => format!("pool {} VM size", pool(i)),
            AksRow::Count(i) => format!("pool {} nodes", pool(i)),
            AksRow::Min(i) => format!("pool {} min", pool(i)),
            AksRow::Max(i) => format!("pool {} max", pool(i)),
        }
    }

    fn rows(&self) -> Vec<(String, String)> {
        let text = |i: usize, f: fn(&PoolFields) -> &String| {
            self.pools.get(i).map(|p| f(p).clone()).unwrap_or_default()
        };
        self.layout()
            .into_iter()
            .map(|r| {
                let value = match r {
                    AksRow::Subscription => self
                        .subs
                        .get(self.sub)
                        .map(|s| s.label())
                        .unwrap_or_else(|| {
                            "no Azure subscription is linked (azure: in the settings)".into()
                        }),
                    AksRow::ResourceGroup => self.resource_group.clone(),
                    AksRow::Location => self.location.clone(),
                    AksRow::Name => self.name.clone(),
                    AksRow::Version => self.version.clone(),
                    AksRow::VmSize(i) => text(i, |p| &p.vm_size),
                    AksRow::Count(i) => text(i, |p| &p.count),
                    AksRow::Min(i) => text(i, |p| &p.min),
                    AksRow::Max(i) => text(i, |p| &p.max),
                };
                (self.label(r), value)
            })
            .collect()
    }

    fn field(&mut self, row: Option<AksRow>) -> Option<&mut String> {
        Some(match row? {
            AksRow::Subscription => return None,
            AksRow::ResourceGroup => &mut self.resource_group,
            AksRow::Location => &mut self.location,
            AksRow::Name => &mut self.name,
            AksRow::Version => &mut self.version,
            AksRow::VmSize(i) => &mut self.pools.get_mut(i)?.vm_size,
            AksRow::Count(i) => &mut self.pools.get_mut(i)?.count,
            AksRow::Min(i) => &mut self.pools.get_mut(i)?.min,
            AksRow::Max(i) => &mut self.pools.get_mut(i)?.max,
        })
    }

    fn key(&mut self, code: crossterm::event::KeyCode) {
        let layout = self.layout();
        let n = self.subs.len();
        if let Some(what) = edit(code, &mut self.sel, layout.len(), &mut self.sub, n) {
            let row = layout.get(self.sel).copied();
            apply(self.field(row), what);
        }
    }

    /// The subscription and spec the form describes, or what is wrong with it (the
    /// version older than the source's included).
    pub fn spec(&self) -> Result<(AzureSubscription, AksSpec), String> {
        let sub = self
            .subs
            .get(self.sub)
            .cloned()
            .ok_or("no Azure subscription is linked: add one under azure: in the settings")?;
        let mut spec = self.base.clone();
        spec.name = self.name.trim().to_string();
        spec.resource_group = self.resource_group.trim().to_string();
        spec.location = self.location.trim().to_string();
        spec.version = self.version.trim().to_string();
        for (p, f) in spec.node_pools.iter_mut().zip(&self.pools) {
            let num = |what: &str, v: &str| {
                v.trim()
                    .parse::<i32>()
                    .map_err(|_| format!("pool {} {what}: {v:?} is not a whole number", p.name))
            };
            p.vm_size = f.vm_size.trim().to_string();
            if p.vm_size.is_empty() {
                return Err(format!(
                    "give pool {}'s VM size (e.g. Standard_D4s_v5)",
                    p.name
                ));
            }
            p.count = num("nodes", &f.count)?;
            if p.enable_auto_scaling {
                p.min_count = Some(num("min", &f.min)?);
                p.max_count = Some(num("max", &f.max)?);
            }
        }
        // The version first: it is pre-filled, so a change to it is what just happened.
        if let Some(src) = &self.source_version {
            check_version(&spec.version, src).map_err(|e| self.advice(&e))?;
        }
        spec.validate().map_err(|e| self.advice(&e))?;
        Ok((sub, spec))
    }

    /// A request error in this form's words (see [`advice`]).
    fn advice(&self, e: &SpecError) -> String {
        let pool = e
            .pool
            .as_deref()
            .and_then(|p| self.base.node_pools.iter().position(|n| n.name == p));
        let labels: Vec<String> = self
            .layout()
            .into_iter()
            .filter(|row| match (e.field, row) {
                (Field::Name, AksRow::Name)
                | (Field::Version, AksRow::Version)
                | (Field::ResourceGroup, AksRow::ResourceGroup)
                | (Field::Location, AksRow::Location) => true,
                (Field::NodeCounts, AksRow::Count(i) | AksRow::Min(i) | AksRow::Max(i)) => {
                    pool == Some(*i)
                }
                _ => false,
            })
            .map(|row| self.label(row))
            .collect();
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        advice(e, &labels, "aks")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> AwsAccount {
        AwsAccount {
            regions: vec!["us-east-1".into()],
            ..AwsAccount::default()
        }
    }

    #[test]
    fn eks_errors_name_the_rows_that_fix_them() {
        let mut f = EksForm::new(&[account()], None, "v1.31.2", "shop");
        f.role_arn = "arn:aws:iam::1:role/eks".into();
        f.node_role = "arn:aws:iam::1:role/node".into();
        f.subnets = "subnet-a".into();
        let e = f.spec().unwrap_err();
        assert_eq!(
            e,
            "EKS needs subnets in at least two availability zones: set “subnets” to two or more subnets in different availability zones, separated by commas"
        );
        f.subnets = "subnet-a,subnet-b".into();
        f.version = "1.30".into();
        let e = f.spec().unwrap_err();
        assert!(
            e.ends_with("set “Kubernetes version” to 1.31 or newer"),
            "{e}"
        );
        f.version = "1.31".into();
        f.min = "3".into();
        let e = f.spec().unwrap_err();
        assert!(
            e.contains("set “nodes min”, “nodes max” and “nodes desired” to counts"),
            "{e}"
        );
        f.min = "1".into();
        f.role_arn = "eks".into();
        assert!(
            f.spec()
                .unwrap_err()
                .contains("set “cluster role ARN” to an IAM role ARN")
        );
        f.role_arn = "arn:aws:iam::1:role/eks".into();
        assert!(f.spec().is_ok());
        // A second node group from the envelope is not on the form.
        f.base.nodegroups.push(NodegroupSpec {
            name: "batch".into(),
            min_size: 1,
            max_size: 1,
            desired_size: 1,
            ..NodegroupSpec::default()
        });
        let e = f.spec().unwrap_err();
        assert!(
            e.starts_with("node group batch has no node role: this form does not show"),
            "{e}"
        );
        assert!(e.contains("`ferry cluster create eks`"), "{e}");
    }

    #[test]
    fn aks_errors_name_the_rows_that_fix_them() {
        let sub = AzureSubscription {
            id: "s".into(),
            ..AzureSubscription::default()
        };
        let mut f = AksForm::new(&[sub], None, "1.31", "shop");
        assert!(f.spec().is_ok(), "{:?}", f.spec().err());
        f.resource_group = " ".into();
        assert_eq!(
            f.spec().unwrap_err(),
            "no resource group is given: set “resource group” to the resource group to create the cluster in"
        );
        f.resource_group = "rg".into();
        f.pools[0].count = "0".into();
        let e = f.spec().unwrap_err();
        assert!(
            e.contains("set “pool system nodes” to at least 1 node"),
            "{e}"
        );
        f.pools[0].count = "2".into();
        f.version = "1.29".into();
        let e = f.spec().unwrap_err();
        assert!(
            e.ends_with("set “Kubernetes version” to 1.31 or newer"),
            "{e}"
        );
        assert!(!e.contains("--"), "{e}");
    }
}
