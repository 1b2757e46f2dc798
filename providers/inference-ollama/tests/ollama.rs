//! The inference client against an Ollama-API server: the test server of the testkit, whose
//! embeddings are real all-MiniLM-L6-v2 vectors and whose chat answers are scripted (model
//! `cim-scripted-chat`). The same client talks to a real Ollama unchanged.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cim_domain::EcsError;
use cim_testkit::{OllamaServer, EMBEDDING_MODEL, SCRIPTED_CHAT_MODEL};
use inference_ollama::client::{Client, Message, Role};
use inference_ollama::config::{InferenceConfig, ENDPOINT, TIMEOUT_SECS};

fn client(endpoint: &str, timeout_secs: &str) -> Client {
    let config = InferenceConfig::default()
        .with(&HashMap::from([
            (ENDPOINT.to_string(), endpoint.to_string()),
            (TIMEOUT_SECS.to_string(), timeout_secs.to_string()),
        ]))
        .unwrap();
    Client::new(config)
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

#[tokio::test]
async fn embeddings_are_real_and_semantically_sane() {
    let server = OllamaServer::start().unwrap();
    let c = client(&server.url(), "60");
    let texts = [
        "The cat sits on the mat",
        "A kitten is lying on the rug",
        "Quarterly revenue rose 4 percent",
    ];
    let v = c
        .embed(
            EMBEDDING_MODEL,
            texts.iter().map(|t| t.to_string()).collect(),
        )
        .await
        .unwrap();
    assert_eq!(v.len(), 3);
    assert!(v.iter().all(|e| e.len() == 384));
    let similar = cosine(&v[0], &v[1]);
    let unrelated = cosine(&v[0], &v[2]);
    eprintln!("cos(cat, kitten) = {similar:.3}, cos(cat, revenue) = {unrelated:.3}");
    assert!(similar > unrelated + 0.3, "{similar} vs {unrelated}");
    // Batches keep their order: the second text alone gives the second vector.
    let alone = c
        .embed(EMBEDDING_MODEL, vec![texts[1].to_string()])
        .await
        .unwrap();
    assert!(cosine(&alone[0], &v[1]) > 0.999);
    assert!(c.embed(EMBEDDING_MODEL, vec![]).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_scripted_chat_model_answers_chats_and_prompts() {
    let server = OllamaServer::start().unwrap();
    let c = client(&server.url(), "60");
    let answer = c
        .chat(
            SCRIPTED_CHAT_MODEL,
            vec![
                Message {
                    role: Role::System,
                    content: "Answer with JSON only.".into(),
                },
                Message {
                    role: Role::User,
                    content: "Categories: invoice, recipe\nText:\nPlease pay 42 EUR for order 17 by Friday.".into(),
                },
            ],
        )
        .await
        .unwrap();
    assert!(answer.model.starts_with(SCRIPTED_CHAT_MODEL), "{answer:?}");
    let json: serde_json::Value = serde_json::from_str(&answer.content).unwrap();
    assert_eq!(json["category"], "invoice", "{answer:?}");
    let generated = c
        .generate(SCRIPTED_CHAT_MODEL, "Say hello", Some("Be brief."))
        .await
        .unwrap();
    assert!(generated.content.contains("Say hello"), "{generated:?}");
}

#[tokio::test]
async fn failures_are_typed() {
    let server = OllamaServer::start().unwrap();
    let c = client(&server.url(), "60");
    let missing = c
        .embed("no-such-model", vec!["x".into()])
        .await
        .unwrap_err();
    assert!(
        matches!(&missing, EcsError::NotFound(m) if m.contains("ollama pull no-such-model")),
        "{missing:?}"
    );
    let wrong = c
        .chat(
            EMBEDDING_MODEL,
            vec![Message {
                role: Role::User,
                content: "hi".into(),
            }],
        )
        .await
        .unwrap_err();
    assert!(matches!(wrong, EcsError::Invalid(_)), "{wrong:?}");
    assert!(matches!(
        c.chat(SCRIPTED_CHAT_MODEL, vec![]).await,
        Err(EcsError::Invalid(_))
    ));
    assert!(matches!(
        c.embed("bad model", vec!["x".into()]).await,
        Err(EcsError::Invalid(_))
    ));

    // Nobody listens: unavailable, at once.
    let port = cim_testkit::free_port().unwrap();
    let down = client(&format!("http://127.0.0.1:{port}"), "60");
    let started = Instant::now();
    let err = down
        .embed(EMBEDDING_MODEL, vec!["x".into()])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EcsError::Unavailable(m) if m.contains("unreachable")),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // A server that accepts but never answers: unavailable after the deadline.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let stuck = client(&format!("http://127.0.0.1:{port}"), "1");
    let started = Instant::now();
    let err = stuck
        .generate(SCRIPTED_CHAT_MODEL, "x", None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EcsError::Unavailable(m) if m.contains("within 1s")),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    drop(silent);
}
