//! The build pipeline system (seed 002): a process manager between the package entity and the
//! Nix build capability.
//!
//! For every `BuildRequested` event it builds the requested flake attribute, records the
//! outcome on the package (`RecordBuildSuccess` / `RecordBuildFailure`, caused by the request
//! event) and, after a success, publishes the first output (`PublishPackage` with the CID of
//! its NAR, caused by the `BuildSucceeded` event).
//!
//! Delivery is at least once, so the system decides from the package's history what is still
//! to do ([`plan`]): a redelivered request whose outcome is recorded does nothing, and one
//! whose success is recorded but not yet published only publishes. Nix builds are
//! deterministic and cached, so asking for the same build again to learn its NAR CID costs a
//! cache lookup, not a build.
//!
//! [`react`] runs the whole reaction against three ports: the event log (to read the history),
//! the build capability ([`Builder`]) and the package entity ([`Packages`]). Components supply
//! their WIT imports; native tests supply an in-memory log and the real package aggregate.

use cim_domain::{Aggregate, EcsError, EntityRef, Envelope, EventLog, RecordedEvent};

use crate::package::{Package, PackageCommand, PackageEvent};

/// What the build capability answered for a build that ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOutcome {
    /// Whether the build succeeded.
    pub success: bool,
    /// Store paths produced (empty on failure).
    pub out_paths: Vec<String>,
    /// NAR hash of the first output.
    pub nar_hash: Option<String>,
    /// CID of the first output's NAR in the object store.
    pub nar_cid: Option<String>,
    /// CID of the build log in the object store.
    pub log_cid: Option<String>,
    /// Why the build failed.
    pub error: Option<String>,
}

/// The build capability (`cim:ecs/build`).
pub trait Builder {
    /// Builds `attribute` of `flake_ref`. `Err(Invalid)` means the build system refuses the
    /// request (a ref outside its allow-list); other errors mean it could not run it now.
    fn build(&mut self, flake_ref: &str, attribute: &str) -> Result<BuildOutcome, EcsError>;
}

/// The package entity (`cim:package/commands` of the package component).
pub trait Packages {
    /// Sends `command` to `package` with envelope `meta`; returns the events it appended.
    fn send(
        &mut self,
        package: &EntityRef,
        command: &PackageCommand,
        meta: Envelope,
    ) -> Result<Vec<RecordedEvent>, EcsError>;
}

/// The build requested by a `BuildRequested` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Flake reference.
    pub flake_ref: String,
    /// Flake output attribute.
    pub attribute: String,
    /// Which attempt of the package this is.
    pub attempt: u32,
}

/// Returns the build request carried by `event`, if it is a package's `BuildRequested`.
pub fn request(event: &RecordedEvent) -> Result<Option<Request>, EcsError> {
    if event.entity.kind.as_str() != Package::KIND || event.name.as_str() != "BuildRequested" {
        return Ok(None);
    }
    match decode(event)? {
        PackageEvent::BuildRequested {
            flake_ref,
            attribute,
            attempt,
        } => Ok(Some(Request {
            flake_ref,
            attribute,
            attempt,
        })),
        _ => Ok(None),
    }
}

fn decode(event: &RecordedEvent) -> Result<PackageEvent, EcsError> {
    Package::decode_event(event.name.as_str(), event.schema_version, &event.payload).map_err(|e| {
        EcsError::Invalid(format!(
            "{} v{}: undecodable package event: {e}",
            event.entity, event.version
        ))
    })
}

/// What is still to do for one build request, judged from the events after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Build, then record the outcome.
    BuildAndRecord,
    /// The success is recorded but not published: publish `store_path`, caused by the
    /// `BuildSucceeded` event `succeeded` (its CID).
    Publish {
        /// CID of the `BuildSucceeded` event.
        succeeded: String,
        /// The first output of the build.
        store_path: String,
    },
    /// The attempt failed, or succeeded and a package was published: nothing to do.
    Done,
}

/// Decides what is still to do for `request` given the package's events after it.
pub fn plan(request: &Request, later: &[RecordedEvent]) -> Result<Plan, EcsError> {
    let mut succeeded: Option<(String, String)> = None;
    for event in later {
        match decode(event)? {
            PackageEvent::BuildFailed { attempt, .. } if attempt == request.attempt => {
                return Ok(Plan::Done)
            }
            PackageEvent::BuildSucceeded {
                attempt, out_paths, ..
            } if attempt == request.attempt => {
                let first = out_paths.first().cloned().ok_or_else(|| {
                    EcsError::Invalid(format!(
                        "{} v{}: a recorded success without out paths",
                        event.entity, event.version
                    ))
                })?;
                succeeded = Some((event.cid.to_string(), first));
            }
            PackageEvent::PackagePublished { .. } if succeeded.is_some() => return Ok(Plan::Done),
            _ => {}
        }
    }
    Ok(match succeeded {
        Some((succeeded, store_path)) => Plan::Publish {
            succeeded,
            store_path,
        },
        None => Plan::BuildAndRecord,
    })
}

/// What one delivered event led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reaction {
    /// Not a build request.
    Ignored,
    /// The request was already handled (a redelivery).
    AlreadyDone,
    /// The build ran and failed, or was refused; the failure is recorded.
    Failed {
        /// Why.
        error: String,
    },
    /// The build succeeded and the package was published.
    Published {
        /// The published store path.
        store_path: String,
        /// CID of its NAR.
        package_cid: String,
    },
}

/// Reads every event of `entity` after `version`.
fn events_after(
    log: &mut impl EventLog,
    entity: &EntityRef,
    version: u64,
) -> Result<Vec<RecordedEvent>, EcsError> {
    let mut out = Vec::new();
    let mut from = version + 1;
    loop {
        let page = log.read(entity, from, cim_domain::handler::READ_PAGE)?;
        let n = page.len() as u64;
        out.extend(page);
        if n < u64::from(cim_domain::handler::READ_PAGE) {
            return Ok(out);
        }
        from += n;
    }
}

/// How many times [`react`] re-reads the history after a command was refused because
/// another delivery of the same event got there first.
const ROUNDS: usize = 4;

/// The pipeline's reaction to one delivered event, idempotent under redelivery.
///
/// Commands are sent with deterministic ids (`pipeline-record-<request CID>`,
/// `pipeline-publish-<success CID>`), in the trigger's conversation, at `now_ms`.
pub fn react<P: EventLog + Builder + Packages>(
    ports: &mut P,
    event: &RecordedEvent,
    now_ms: u64,
) -> Result<Reaction, EcsError> {
    let Some(request) = request(event)? else {
        return Ok(Reaction::Ignored);
    };
    let mut built: Option<BuildOutcome> = None;
    let mut failure: Option<String> = None;
    for _ in 0..ROUNDS {
        let later = events_after(ports, &event.entity, event.version)?;
        let command_meta = |id: String, causation: String| Envelope {
            id,
            correlation_id: event.meta.correlation_id.clone(),
            causation_id: Some(causation),
            occurred_at_ms: now_ms,
        };
        match plan(&request, &later)? {
            Plan::Done => {
                return Ok(match failure {
                    Some(error) => Reaction::Failed { error },
                    None => Reaction::AlreadyDone,
                })
            }
            Plan::BuildAndRecord => {
                let command = match ports.build(&request.flake_ref, &request.attribute) {
                    Ok(outcome) => {
                        let command = record(&outcome);
                        built = Some(outcome);
                        command
                    }
                    Err(EcsError::Invalid(why)) => PackageCommand::RecordBuildFailure {
                        error: format!("the build system refused the request: {why}"),
                        log_cid: None,
                    },
                    Err(other) => return Err(other),
                };
                if let PackageCommand::RecordBuildFailure { error, .. } = &command {
                    failure = Some(error.clone());
                }
                let meta = command_meta(
                    format!("pipeline-record-{}", event.cid),
                    event.cid.to_string(),
                );
                settle(ports.send(&event.entity, &command, meta))?;
            }
            Plan::Publish {
                succeeded,
                store_path,
            } => {
                let outcome = match built.take() {
                    Some(outcome) => outcome,
                    None => ports.build(&request.flake_ref, &request.attribute)?,
                };
                // The success on record was not the pipeline's (any caller may send a
                // command; NATS does not tell the package who did): the build system, asked
                // again, does not confirm it. Asking once more cannot change that.
                if !outcome.success {
                    return Err(EcsError::Invalid(format!(
                        "the recorded build success of {}#{} is not confirmed by the build \
                         system, which reports a failure: {}; nothing is published",
                        request.flake_ref,
                        request.attribute,
                        outcome.error.as_deref().unwrap_or("no reason given")
                    )));
                }
                let package_cid = outcome.nar_cid.clone().ok_or_else(|| {
                    EcsError::Unavailable(format!(
                        "the build system returned no NAR CID for {}#{}",
                        request.flake_ref, request.attribute
                    ))
                })?;
                if outcome.out_paths.first() != Some(&store_path) {
                    return Err(EcsError::Invalid(format!(
                        "rebuilding {}#{} gave {:?}, not the recorded {store_path}: the build is not reproducible",
                        request.flake_ref, request.attribute, outcome.out_paths
                    )));
                }
                let command = PackageCommand::PublishPackage {
                    store_path: store_path.clone(),
                    package_cid: package_cid.clone(),
                };
                let meta = command_meta(format!("pipeline-publish-{succeeded}"), succeeded);
                if settle(ports.send(&event.entity, &command, meta))? {
                    return Ok(Reaction::Published {
                        store_path,
                        package_cid,
                    });
                }
                built = Some(outcome);
            }
        }
    }
    Err(EcsError::Unavailable(format!(
        "{}: the package kept refusing the pipeline's commands",
        event.entity
    )))
}

/// The command that records `outcome` on the package.
fn record(outcome: &BuildOutcome) -> PackageCommand {
    if outcome.success {
        PackageCommand::RecordBuildSuccess {
            out_paths: outcome.out_paths.clone(),
            nar_hash: outcome.nar_hash.clone().unwrap_or_default(),
            log_cid: outcome.log_cid.clone(),
        }
    } else {
        PackageCommand::RecordBuildFailure {
            error: outcome
                .error
                .clone()
                .unwrap_or_else(|| "the build failed".into()),
            log_cid: outcome.log_cid.clone(),
        }
    }
}

/// `true` if the command was stored; `false` if it was refused or lost a race, so the caller
/// reads the history again (another delivery may have recorded it); other errors propagate.
fn settle(sent: Result<Vec<RecordedEvent>, EcsError>) -> Result<bool, EcsError> {
    match sent {
        Ok(_) => Ok(true),
        Err(EcsError::Rejected(_) | EcsError::Conflict { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use cim_domain::testing::{run_commands, MemoryLog};
    use cim_domain::{handle_command, object_cid, CommandRequest, EventCodec, NewEvent};

    const OUT: &str = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello";

    /// The ports of a test: the real package aggregate on an in-memory log, and build outcomes
    /// given by the test (in order, one per build call).
    struct Ports {
        log: MemoryLog,
        outcomes: Vec<Result<BuildOutcome, EcsError>>,
        builds: usize,
    }

    impl EventLog for Ports {
        fn read(
            &mut self,
            entity: &EntityRef,
            from: u64,
            max: u32,
        ) -> Result<Vec<RecordedEvent>, EcsError> {
            self.log.read(entity, from, max)
        }

        fn append(
            &mut self,
            entity: &EntityRef,
            expected_version: u64,
            events: Vec<NewEvent>,
        ) -> Result<Vec<RecordedEvent>, EcsError> {
            self.log.append(entity, expected_version, events)
        }
    }

    impl Builder for Ports {
        fn build(&mut self, flake_ref: &str, attribute: &str) -> Result<BuildOutcome, EcsError> {
            assert_eq!((flake_ref, attribute), ("path:/src/hello", "default"));
            self.builds += 1;
            self.outcomes.remove(0)
        }
    }

    impl Packages for Ports {
        fn send(
            &mut self,
            package: &EntityRef,
            command: &PackageCommand,
            meta: Envelope,
        ) -> Result<Vec<RecordedEvent>, EcsError> {
            let (name, payload) = EventCodec::encode(command).unwrap();
            handle_command::<Package>(
                &mut self.log,
                CommandRequest {
                    kind: package.kind.to_string(),
                    id: package.id.to_string(),
                    name: name.to_string(),
                    payload,
                    expected_version: None,
                    meta,
                },
            )
        }
    }

    fn cid_of(text: &str) -> String {
        object_cid(text.as_bytes()).to_string()
    }

    fn success() -> BuildOutcome {
        BuildOutcome {
            success: true,
            out_paths: vec![OUT.into()],
            nar_hash: Some("sha256-abc".into()),
            nar_cid: Some(cid_of("nar")),
            log_cid: Some(cid_of("log")),
            error: None,
        }
    }

    fn failure() -> BuildOutcome {
        BuildOutcome {
            success: false,
            out_paths: vec![],
            nar_hash: None,
            nar_cid: None,
            log_cid: Some(cid_of("failed log")),
            error: Some("builder for hello.drv failed with exit code 1".into()),
        }
    }

    /// A package approved and with a build requested; returns the ports and the request event.
    fn requested(outcomes: Vec<Result<BuildOutcome, EcsError>>) -> (Ports, RecordedEvent) {
        let mut log = MemoryLog::new();
        let steps: Vec<(&str, String)> =
            crate::package::example_pipeline(OUT, &cid_of("x"), "h", false)
                .into_iter()
                .take(4)
                .collect();
        let steps: Vec<(&str, &str)> = steps.iter().map(|(n, j)| (*n, j.as_str())).collect();
        let events = run_commands::<Package>(&mut log, "package", "hello", &steps);
        let request = events.last().unwrap().clone();
        assert_eq!(request.name.as_str(), "BuildRequested");
        (
            Ports {
                log,
                outcomes,
                builds: 0,
            },
            request,
        )
    }

    fn names(ports: &Ports, request: &RecordedEvent) -> Vec<String> {
        ports
            .log
            .events(&request.entity)
            .iter()
            .skip(request.version as usize)
            .map(|e| e.name.to_string())
            .collect()
    }

    #[test]
    fn a_successful_build_is_recorded_then_published_each_caused_by_its_trigger() {
        let (mut ports, request) = requested(vec![Ok(success())]);
        let reaction = react(&mut ports, &request, 7).unwrap();
        assert_eq!(
            reaction,
            Reaction::Published {
                store_path: OUT.into(),
                package_cid: cid_of("nar"),
            }
        );
        assert_eq!(
            names(&ports, &request),
            ["BuildSucceeded", "PackagePublished"]
        );
        let stored = ports.log.events(&request.entity);
        let (succeeded, published) = (&stored[4], &stored[5]);
        let request_cid = request.cid.to_string();
        assert_eq!(
            succeeded.meta.causation_id.as_deref(),
            Some(request_cid.as_str())
        );
        assert_eq!(succeeded.meta.correlation_id, request.meta.correlation_id);
        assert_eq!(succeeded.meta.occurred_at_ms, 7);
        let succeeded_cid = succeeded.cid.to_string();
        assert_eq!(
            published.meta.causation_id.as_deref(),
            Some(succeeded_cid.as_str())
        );
        let event: PackageEvent =
            EventCodec::decode(succeeded.name.as_str(), &succeeded.payload).unwrap();
        assert_eq!(
            event,
            PackageEvent::BuildSucceeded {
                attempt: 1,
                out_paths: vec![OUT.into()],
                nar_hash: "sha256-abc".into(),
                log_cid: Some(cid_of("log")),
            }
        );
        assert_eq!(ports.builds, 1);
    }

    #[test]
    fn a_redelivered_request_does_nothing_twice() {
        let (mut ports, request) = requested(vec![Ok(success())]);
        react(&mut ports, &request, 7).unwrap();
        let before = ports.log.events(&request.entity).len();
        assert_eq!(
            react(&mut ports, &request, 8).unwrap(),
            Reaction::AlreadyDone
        );
        assert_eq!(ports.log.events(&request.entity).len(), before);
        assert_eq!(ports.builds, 1, "no second build");
    }

    #[test]
    fn a_recorded_but_unpublished_success_is_only_published() {
        // A delivery that died after recording the success: the next one asks the (cached)
        // build again for its NAR CID and publishes, recording nothing twice.
        let (mut ports, request) = requested(vec![Ok(success()), Ok(success())]);
        let meta = Envelope::originating("earlier", 1);
        ports
            .send(&request.entity, &record(&success()), meta)
            .unwrap();
        let reaction = react(&mut ports, &request, 9).unwrap();
        assert!(
            matches!(reaction, Reaction::Published { .. }),
            "{reaction:?}"
        );
        assert_eq!(
            names(&ports, &request),
            ["BuildSucceeded", "PackagePublished"]
        );
        assert_eq!(ports.builds, 1);
    }

    #[test]
    fn a_failed_build_is_recorded_with_its_log_and_nothing_is_published() {
        let (mut ports, request) = requested(vec![Ok(failure())]);
        let reaction = react(&mut ports, &request, 7).unwrap();
        assert!(matches!(&reaction, Reaction::Failed { error } if error.contains("exit code 1")));
        assert_eq!(names(&ports, &request), ["BuildFailed"]);
        let failed = &ports.log.events(&request.entity)[4];
        let event: PackageEvent = EventCodec::decode("BuildFailed", &failed.payload).unwrap();
        assert!(
            matches!(event, PackageEvent::BuildFailed { attempt: 1, log_cid: Some(ref c), .. } if *c == cid_of("failed log"))
        );
    }

    #[test]
    fn a_refused_request_is_a_failure_without_a_log() {
        let refused = EcsError::Invalid("path:/src/hello is not in the allow-list".into());
        let (mut ports, request) = requested(vec![Err(refused)]);
        let reaction = react(&mut ports, &request, 7).unwrap();
        assert!(matches!(&reaction, Reaction::Failed { error } if error.contains("allow-list")));
        assert_eq!(names(&ports, &request), ["BuildFailed"]);
        let failed = &ports.log.events(&request.entity)[4];
        let event: PackageEvent = EventCodec::decode("BuildFailed", &failed.payload).unwrap();
        assert!(matches!(
            event,
            PackageEvent::BuildFailed { log_cid: None, .. }
        ));
    }

    #[test]
    fn an_unavailable_build_system_stores_nothing_and_asks_for_redelivery() {
        let (mut ports, request) =
            requested(vec![Err(EcsError::Unavailable("nix daemon down".into()))]);
        let err = react(&mut ports, &request, 7).unwrap_err();
        assert!(matches!(err, EcsError::Unavailable(_)));
        assert!(names(&ports, &request).is_empty());
    }

    #[test]
    fn a_success_without_a_nar_cid_records_the_build_but_does_not_publish() {
        let mut outcome = success();
        outcome.nar_cid = None;
        let (mut ports, request) = requested(vec![Ok(outcome)]);
        assert!(matches!(
            react(&mut ports, &request, 7),
            Err(EcsError::Unavailable(_))
        ));
        assert_eq!(names(&ports, &request), ["BuildSucceeded"]);
    }

    #[test]
    fn a_recorded_success_the_build_system_does_not_confirm_is_refused_for_good() {
        // Someone other than the pipeline recorded a success (seen: a made-up store path sent
        // right after the request); the build itself fails.
        let (mut ports, request) = requested(vec![Ok(failure())]);
        let meta = Envelope::originating("outsider", 1);
        ports
            .send(&request.entity, &record(&success()), meta)
            .unwrap();
        let err = react(&mut ports, &request, 9).unwrap_err();
        assert!(
            matches!(&err, EcsError::Invalid(m) if m.contains("not confirmed")),
            "{err:?}"
        );
        assert_eq!(
            names(&ports, &request),
            ["BuildSucceeded"],
            "nothing published"
        );
    }

    #[test]
    fn other_events_and_superseded_attempts_are_left_alone() {
        let (mut ports, request) = requested(vec![Ok(failure())]);
        let earlier = ports.log.events(&request.entity)[0].clone();
        assert_eq!(react(&mut ports, &earlier, 7).unwrap(), Reaction::Ignored);
        react(&mut ports, &request, 7).unwrap();
        // A retry is requested: attempt 2. The first request, delivered again, is done.
        let retry = PackageCommand::RequestBuild {
            flake_ref: "path:/src/hello".into(),
            attribute: "default".into(),
        };
        ports
            .send(&request.entity, &retry, Envelope::originating("retry", 2))
            .unwrap();
        assert_eq!(
            react(&mut ports, &request, 8).unwrap(),
            Reaction::AlreadyDone
        );
        assert_eq!(ports.builds, 1);
    }

    #[test]
    fn plans_follow_the_history() {
        let (mut ports, request) = requested(vec![Ok(success())]);
        let req = super::request(&request).unwrap().unwrap();
        assert_eq!(req.attempt, 1);
        assert_eq!(plan(&req, &[]).unwrap(), Plan::BuildAndRecord);
        ports
            .send(
                &request.entity,
                &record(&success()),
                Envelope::originating("r", 1),
            )
            .unwrap();
        let later = ports.log.events(&request.entity)[4..].to_vec();
        assert!(
            matches!(plan(&req, &later).unwrap(), Plan::Publish { store_path, .. } if store_path == OUT)
        );
    }
}
