//! Authentication: the password is a modelwatch token.
//!
//! pgwire's `AuthSource` must hand back the expected password, while tokens
//! are stored hashed, so this is a hand-written cleartext startup handler:
//! the password goes to [`Auth::authenticate`] (same cache, same
//! revocation as a bearer token). Only a successful login opens the
//! session's SQL context ([`SessionCore::open`]); until then a connection
//! holds no more than its socket.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion_postgres::pgwire;
use futures::{Sink, SinkExt};
use pgwire::api::auth::{
    DefaultServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::{
    ClientInfo, METADATA_USER, PgWireConnectionState, PidSecretKeyGenerator,
    RandomPidSecretKeyGenerator,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use super::SERVER_VERSION;
use super::session::SessionCore;
use crate::auth::Auth;

pub(super) struct TokenStartup {
    pub auth: Arc<Auth>,
    pub session: Arc<SessionCore>,
    pub pids: RandomPidSecretKeyGenerator,
}

impl TokenStartup {
    fn parameters() -> DefaultServerParameterProvider {
        let mut p = DefaultServerParameterProvider::default();
        p.server_version = SERVER_VERSION.to_owned();
        p.is_superuser = false;
        p.default_transaction_read_only = true;
        p
    }

    async fn accept<C>(&self, client: &mut C) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.session.open();
        let (pid, key) = self.pids.generate(&*client);
        client.set_pid_and_secret_key(pid, key);
        finish_authentication(client, &Self::parameters()).await
    }
}

#[async_trait]
impl StartupHandler for TokenStartup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                if self.auth.disabled() {
                    return self.accept(client).await;
                }
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::CleartextPassword,
                    ))
                    .await?;
            }
            PgWireFrontendMessage::PasswordMessageFamily(pwd) => {
                let password = pwd.into_password()?;
                let user = client
                    .metadata()
                    .get(METADATA_USER)
                    .cloned()
                    .unwrap_or_default();
                // Every role may read; reader is the lowest.
                match self
                    .auth
                    .authenticate(Some(password.password.as_str()), crate::auth::Via::Sql)
                    .await
                {
                    Ok(actor) => {
                        tracing::info!(user = %user, token = %actor.name, peer = %client.socket_addr(), "PostgreSQL client authenticated");
                        self.accept(client).await?;
                    }
                    Err(e) => {
                        tracing::info!(user = %user, peer = %client.socket_addr(), "PostgreSQL authentication failed");
                        return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                            "FATAL".to_owned(),
                            "28P01".to_owned(),
                            format!(
                                "password authentication failed for user \"{user}\": {}; the password must be a modelwatch token (`modelwatch token create --name NAME --role reader`)",
                                e.message
                            ),
                        ))));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}
