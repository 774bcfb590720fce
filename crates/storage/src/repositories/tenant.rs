//! The tenant's objects and its version. One implementation for SQLite and PostgreSQL,
//! expanded by [`impl_store!`](crate::shared) inside each store's module.

/// Implements this repository for `$store` over `$db`; expanded inside
/// `impl_store!`, whose imports and row helpers it uses.
macro_rules! impl_tenant {
    ($store:ty, $db:ty, $backend_name:literal) => {
        /// Bumps the tenant version by one, if it equals `expected` (when given),
        /// and returns the new one; `None` if it did not. Run first in every tenant
        /// write: the row lock it takes (PostgreSQL) or the write lock already
        /// held (SQLite) serialises tenant writers, so versions stay consecutive
        /// and each one names exactly one state of the objects.
        async fn bump_tenant_version(
            conn: &mut <$db as ::sqlx::Database>::Connection,
            expected: Option<i64>,
        ) -> Result<Option<i64>> {
            ::sqlx::query_scalar(
                "UPDATE tenant_meta SET version = version + 1 \
                 WHERE id = 1 AND ($1 IS NULL OR version = $1) RETURNING version",
            )
            .bind(expected)
            .fetch_optional(&mut *conn)
            .await
            .map_err(backend)
        }

        /// Why a bump matched no row: a stale expected version, or (with none
        /// expected) a `tenant_meta` row someone removed.
        fn no_bump(expected: Option<i64>) -> StorageError {
            match expected {
                Some(_) => StorageError::Conflict,
                None => missing_tenant_meta(),
            }
        }

        fn missing_tenant_meta() -> StorageError {
            StorageError::Corrupt("tenant_meta: the version row is missing".into())
        }

        #[async_trait]
        impl TenantRepository for $store {
            async fn tenant_version(&self) -> Result<i64> {
                ::sqlx::query_scalar("SELECT version FROM tenant_meta WHERE id = 1")
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend)?
                    .ok_or_else(missing_tenant_meta)
            }

            async fn tenant_objects(&self) -> Result<TenantObjects> {
                // One statement sees one state of the database on both backends
                // (PostgreSQL's READ COMMITTED snapshots per statement), so the
                // version cannot belong to other objects than those read with it.
                let rows = ::sqlx::query(
                    "SELECT m.version, o.kind, o.id, o.position, o.document \
                     FROM tenant_meta m LEFT JOIN tenant_objects o ON 1 = 1 \
                     WHERE m.id = 1",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?;
                let Some(first) = rows.first() else {
                    return Err(missing_tenant_meta());
                };
                let version: i64 = col(first, "version")?;
                let mut objects = Vec::with_capacity(rows.len());
                for row in &rows {
                    // An empty tenant is one row whose object columns are NULL.
                    let Some(kind) = col::<Option<String>>(row, "kind")? else {
                        continue;
                    };
                    let id: String = col(row, "id")?;
                    let position: i64 = col(row, "position")?;
                    let document = from_json(&col::<String>(row, "document")?, "document")?;
                    objects.push((position, TenantObject { kind, id, document }));
                }
                // Sorted here rather than in SQL so that the order does not depend
                // on the database's collation.
                objects.sort_by(|(pa, a), (pb, b)| {
                    (a.kind.as_str(), pa, a.id.as_str()).cmp(&(b.kind.as_str(), pb, b.id.as_str()))
                });
                Ok(TenantObjects {
                    version,
                    objects: objects.into_iter().map(|(_, o)| o).collect(),
                })
            }

            async fn replace_tenant(
                &self,
                objects: &[TenantObject],
                expected_version: i64,
            ) -> Result<i64> {
                let documents = objects
                    .iter()
                    .map(|o| to_json(&o.document))
                    .collect::<Result<Vec<_>>>()?;
                let mut tx = self.begin_write().await?;
                let Some(version) = bump_tenant_version(&mut *tx, Some(expected_version)).await?
                else {
                    tx.rollback().await.map_err(backend)?;
                    return Err(StorageError::Conflict);
                };
                ::sqlx::query("DELETE FROM tenant_objects")
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                for (position, (object, document)) in objects.iter().zip(&documents).enumerate() {
                    let position =
                        i64::try_from(position).map_err(|e| StorageError::Backend(Box::new(e)))?;
                    ::sqlx::query(
                        "INSERT INTO tenant_objects (kind, id, position, document) \
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(&object.kind)
                    .bind(&object.id)
                    .bind(position)
                    .bind(document)
                    .execute(&mut *tx)
                    .await
                    // Dropping `tx` on the way out rolls everything back.
                    .map_err(insert_error)?;
                }
                tx.commit().await.map_err(backend)?;
                Ok(version)
            }

            async fn put_tenant_object(
                &self,
                object: &TenantObject,
                expected_version: Option<i64>,
            ) -> Result<i64> {
                let document = to_json(&object.document)?;
                let mut tx = self.begin_write().await?;
                let Some(version) = bump_tenant_version(&mut *tx, expected_version).await? else {
                    tx.rollback().await.map_err(backend)?;
                    return Err(no_bump(expected_version));
                };
                let updated = ::sqlx::query(
                    "UPDATE tenant_objects SET document = $3 WHERE kind = $1 AND id = $2",
                )
                .bind(&object.kind)
                .bind(&object.id)
                .bind(&document)
                .execute(&mut *tx)
                .await
                .map_err(backend)?
                .rows_affected();
                if updated == 0 {
                    // Writers are serialised by the version bump above, so no
                    // other insert can take the same position meanwhile.
                    ::sqlx::query(
                        "INSERT INTO tenant_objects (kind, id, position, document) \
                         SELECT $1, $2, COALESCE(MAX(position), -1) + 1, $3 \
                         FROM tenant_objects WHERE kind = $1",
                    )
                    .bind(&object.kind)
                    .bind(&object.id)
                    .bind(&document)
                    .execute(&mut *tx)
                    .await
                    .map_err(insert_error)?;
                }
                tx.commit().await.map_err(backend)?;
                Ok(version)
            }

            async fn delete_tenant_object(
                &self,
                kind: &str,
                id: &str,
                expected_version: Option<i64>,
            ) -> Result<Option<i64>> {
                let mut tx = self.begin_write().await?;
                let Some(version) = bump_tenant_version(&mut *tx, expected_version).await? else {
                    tx.rollback().await.map_err(backend)?;
                    return Err(no_bump(expected_version));
                };
                let deleted =
                    ::sqlx::query("DELETE FROM tenant_objects WHERE kind = $1 AND id = $2")
                        .bind(kind)
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(backend)?
                        .rows_affected();
                if deleted == 0 {
                    // Nothing changed, so the version must not either.
                    tx.rollback().await.map_err(backend)?;
                    return Ok(None);
                }
                tx.commit().await.map_err(backend)?;
                Ok(Some(version))
            }
        }
    };
}
pub(crate) use impl_tenant;
