//! The wizard's "new cluster" targets: a cluster Ferry creates before it restores into
//! it. [`NewCluster`] has one variant per cloud (EKS today; another cloud is one more
//! variant with its form and its create call in `tasks::create_and_restore`). The form
//! is pre-filled from the envelope a capture recorded and checked in place; nothing is
//! created until the wizard's last step is confirmed.

use crate::providers::eks::{self, AwsAccount, ClusterSpec, NodegroupSpec};
use crate::providers::probe::StorageClassInfo;

/// A cluster to create, by cloud.
#[derive(Debug, Clone)]
pub enum NewCluster {
    Eks(EksForm),
}

impl NewCluster {
    /// The entry of the wizard's target list.
    pub fn label(&self) -> &'static str {
        match self {
            NewCluster::Eks(_) => "new EKS cluster…",
        }
    }

    /// The form's rows: (label, value as shown).
    pub fn rows(&self) -> Vec<(&'static str, String)> {
        match self {
            NewCluster::Eks(f) => f.rows(),
        }
    }

    pub fn selected(&self) -> usize {
        match self {
            NewCluster::Eks(f) => f.sel,
        }
    }

    pub fn select(&mut self, i: usize) {
        match self {
            NewCluster::Eks(f) => f.sel = i.min(EKS_ROWS.len() - 1),
        }
    }

    /// A key on the form: ↑/↓ move, ←/→ choose, typing edits.
    pub fn key(&mut self, code: crossterm::event::KeyCode) {
        match self {
            NewCluster::Eks(f) => f.key(code),
        }
    }

    /// What is wrong with the form, if anything.
    pub fn validate(&self) -> Option<String> {
        match self {
            NewCluster::Eks(f) => f.spec().err(),
        }
    }

    /// The new cluster's name.
    pub fn name(&self) -> &str {
        match self {
            NewCluster::Eks(f) => &f.name,
        }
    }

    /// The storage classes it will have (what the class mapping may choose).
    pub fn classes(&self) -> Vec<StorageClassInfo> {
        match self {
            NewCluster::Eks(f) => f
                .base
                .storage_class
                .iter()
                .map(|c| StorageClassInfo {
                    name: c.clone(),
                    provisioner: "ebs.csi.aws.com".into(),
                    parameters: [("type".to_string(), "gp3".to_string())].into(),
                    default: true,
                    binding_mode: "WaitForFirstConsumer".into(),
                    allow_expansion: true,
                })
                .collect(),
        }
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
            None => ClusterSpec {
                name: name.into(),
                endpoint_public_access: true,
                addons: vec![eks::EBS_CSI_ADDON.into()],
                storage_class: Some("gp3".into()),
                ..ClusterSpec::default()
            },
        };
        let source_version = envelope
            .and_then(|e| e["version"].as_str().map(str::to_string))
            .or_else(|| (!server_version.is_empty()).then(|| server_version.to_string()));
        if base.version.is_empty()
            && let Some((maj, min)) = source_version.as_deref().and_then(eks::parse_version)
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
        }
    }

    fn rows(&self) -> Vec<(&'static str, String)> {
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
        EKS_ROWS.iter().copied().zip(values).collect()
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
        use crossterm::event::KeyCode;
        match code {
            KeyCode::Up => self.sel = self.sel.saturating_sub(1),
            KeyCode::Down => self.sel = (self.sel + 1).min(EKS_ROWS.len() - 1),
            KeyCode::Left | KeyCode::Right | KeyCode::Char(' ')
                if self.sel == 0 && !self.places.is_empty() =>
            {
                let n = self.places.len();
                self.place = if code == KeyCode::Left {
                    (self.place + n - 1) % n
                } else {
                    (self.place + 1) % n
                };
            }
            KeyCode::Backspace => {
                if let Some(f) = self.field(self.sel) {
                    f.pop();
                }
            }
            KeyCode::Char(c) => {
                if let Some(f) = self.field(self.sel) {
                    f.push(c);
                }
            }
            _ => {}
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
            eks::check_version(&spec.version, src).map_err(|e| e.to_string())?;
        }
        spec.validate().map_err(|e| e.to_string())?;
        Ok((account, region, spec))
    }
}
