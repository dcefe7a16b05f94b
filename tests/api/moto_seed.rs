//! The moto seeding helpers for a large, realistic pool, and what moto 5.2.5's paging of
//! `ListUsers` / `ListUsersInGroup` really does.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use aws_sdk_cognitoidentityprovider::error::ProvideErrorMetadata;
use aws_sdk_cognitoidentityprovider::types::{UserStatusType, UserType};

use crate::moto::{Pool, SeedUser};

fn attributes(user: &UserType) -> HashMap<&str, &str> {
    user.attributes()
        .iter()
        .map(|a| (a.name(), a.value().unwrap_or_default()))
        .collect()
}

/// Every page of `ListUsers` with `Limit` 60, following `PaginationToken`.
async fn list_all_users(pool: &Pool) -> Vec<Vec<UserType>> {
    let mut pages = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = pool
            .client
            .list_users()
            .user_pool_id(&pool.id)
            .limit(60)
            .set_pagination_token(token.take())
            .send()
            .await
            .expect("ListUsers");
        pages.push(page.users().to_vec());
        match page.pagination_token() {
            Some(next) => token = Some(next.to_owned()),
            None => return pages,
        }
    }
}

/// Every page of `ListUsersInGroup` with `Limit` 60, following `NextToken`.
async fn list_all_in_group(pool: &Pool, group: &str) -> Vec<Vec<UserType>> {
    let mut pages = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = pool
            .client
            .list_users_in_group()
            .user_pool_id(&pool.id)
            .group_name(group)
            .limit(60)
            .set_next_token(token.take())
            .send()
            .await
            .expect("ListUsersInGroup");
        pages.push(page.users().to_vec());
        match page.next_token() {
            Some(next) => token = Some(next.to_owned()),
            None => return pages,
        }
    }
}

fn page_sizes(pages: &[Vec<UserType>]) -> Vec<usize> {
    pages.iter().map(Vec::len).collect()
}

#[tokio::test]
async fn moto_pages_130_seeded_users_with_custom_attributes_and_groups() {
    let pool = Pool::create_with_custom_attributes(false).await;
    let described = pool
        .client
        .describe_user_pool()
        .user_pool_id(&pool.id)
        .send()
        .await
        .unwrap();
    let schema: HashSet<&str> = described
        .user_pool()
        .unwrap()
        .schema_attributes()
        .iter()
        .filter_map(|a| a.name())
        .collect();
    assert!(schema.contains("custom:tenant"), "{schema:?}");
    assert!(
        schema.contains("email") && schema.contains("given_name"),
        "the standard schema survives AddCustomAttributes: {schema:?}"
    );

    let seeds: Vec<SeedUser> = (0..130).map(SeedUser::numbered).collect();
    pool.create_group("admins").await;
    pool.create_group("staff").await;
    for seed in &seeds {
        pool.add_seed_user(seed).await;
    }
    for (i, seed) in seeds.iter().enumerate() {
        if i % 10 == 0 {
            pool.add_to_group(&seed.username, "admins").await;
        }
        if i % 2 == 1 {
            pool.add_to_group(&seed.username, "staff").await;
        }
    }
    pool.disable(&seeds[7].username).await;
    pool.disable(&seeds[8].username).await;
    pool.enable(&seeds[8].username).await;

    let pages = list_all_users(&pool).await;
    assert_eq!(page_sizes(&pages), [60, 60, 10]);
    let users: Vec<UserType> = pages.into_iter().flatten().collect();
    let by_name: HashMap<&str, &UserType> =
        users.iter().map(|u| (u.username().unwrap(), u)).collect();
    assert_eq!(by_name.len(), 130, "130 unique users over 3 pages");
    for (i, seed) in seeds.iter().enumerate() {
        let user = by_name[seed.username.as_str()];
        let attributes = attributes(user);
        assert_eq!(attributes["email"], seed.email);
        assert_eq!(attributes["given_name"], seed.given_name);
        assert_eq!(
            attributes["email_verified"],
            if seed.email_verified { "true" } else { "false" }
        );
        assert_eq!(
            attributes.get("custom:tenant").copied(),
            seed.tenant.as_deref(),
            "custom:tenant of {}",
            seed.username
        );
        assert_eq!(attributes["sub"].len(), 36);
        let status = if seed.password.is_some() {
            UserStatusType::Confirmed
        } else {
            UserStatusType::ForceChangePassword
        };
        assert_eq!(user.user_status(), Some(&status), "{}", seed.username);
        assert_eq!(user.enabled(), i != 7, "{}", seed.username);
        assert!(user.user_create_date().is_some());
        assert!(user.user_last_modified_date().is_some());
    }
    let subs: HashSet<&str> = users.iter().map(|u| attributes(u)["sub"]).collect();
    assert_eq!(subs.len(), 130);
    assert_eq!(
        pool.sub_of(&seeds[42].username).await,
        attributes(by_name["seed-0042"])["sub"]
    );

    let groups = pool
        .client
        .list_groups()
        .user_pool_id(&pool.id)
        .limit(60)
        .send()
        .await
        .unwrap();
    let mut group_names: Vec<&str> = groups
        .groups()
        .iter()
        .filter_map(|g| g.group_name())
        .collect();
    group_names.sort_unstable();
    assert_eq!(group_names, ["admins", "staff"]);

    let staff = list_all_in_group(&pool, "staff").await;
    assert_eq!(page_sizes(&staff), [60, 5]);
    let staff: HashSet<&str> = staff
        .iter()
        .flatten()
        .filter_map(|u| u.username())
        .collect();
    let expected: HashSet<&str> = seeds
        .iter()
        .skip(1)
        .step_by(2)
        .map(|s| s.username.as_str())
        .collect();
    assert_eq!(staff, expected);
    let admins = list_all_in_group(&pool, "admins").await;
    assert_eq!(page_sizes(&admins), [13]);
    let admin = admins[0]
        .iter()
        .find(|u| u.username() == Some("seed-0010"))
        .unwrap();
    assert_eq!(attributes(admin)["custom:tenant"], "tenant-1");

    let estimated = pool
        .client
        .describe_user_pool()
        .user_pool_id(&pool.id)
        .send()
        .await
        .unwrap()
        .user_pool()
        .unwrap()
        .estimated_number_of_users();
    assert_eq!(estimated, 130);
}

/// moto's quirks around paging and custom attributes, pinned so a moto upgrade that changes
/// them is noticed. Tests against moto must not rely on any of them.
#[tokio::test]
async fn moto_paging_and_schema_quirks() {
    // Cognito rejects an undeclared custom attribute; moto stores it.
    let plain = Pool::create(false).await;
    plain.add_seed_user(&SeedUser::numbered(0)).await;
    let listed = plain
        .client
        .list_users()
        .user_pool_id(&plain.id)
        .send()
        .await
        .unwrap();
    assert_eq!(attributes(&listed.users()[0])["custom:tenant"], "tenant-0");

    let pool = Pool::create_with_custom_attributes(false).await;
    for i in 0..5 {
        pool.add_seed_user(&SeedUser::numbered(i)).await;
    }
    // Cognito caps Limit at 60 (InvalidParameterException above); moto accepts anything.
    let page = pool
        .client
        .list_users()
        .user_pool_id(&pool.id)
        .limit(100)
        .send()
        .await
        .expect("moto accepts Limit > 60");
    assert_eq!(page.users().len(), 5);
    // An unknown token: moto answers its own `InvalidToken`, not Cognito's
    // `InvalidParameterException`.
    let error = pool
        .client
        .list_users()
        .user_pool_id(&pool.id)
        .pagination_token("made-up")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("InvalidToken"), "{error:?}");
    // The token names the first user of the next page; once that user is deleted the token
    // is dead (InvalidToken), where Cognito would carry on.
    let first = pool
        .client
        .list_users()
        .user_pool_id(&pool.id)
        .limit(2)
        .send()
        .await
        .unwrap();
    let token = first.pagination_token().unwrap().to_owned();
    pool.client
        .admin_delete_user()
        .user_pool_id(&pool.id)
        .username("seed-0002")
        .send()
        .await
        .unwrap();
    let error = pool
        .client
        .list_users()
        .user_pool_id(&pool.id)
        .limit(2)
        .pagination_token(token)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("InvalidToken"), "{error:?}");
}

/// 250 users in an e-mail-as-username pool, seeded one by one, timed; moto stores the `sub`
/// as the username there, as Cognito does.
#[tokio::test]
async fn seeds_250_users_in_an_email_pool_and_pages_them() {
    let pool = Pool::create_with_custom_attributes(true).await;
    let seeds: Vec<SeedUser> = (0..250)
        .map(|i| {
            let seed = SeedUser::numbered(i);
            SeedUser {
                username: seed.email.clone(),
                ..seed
            }
        })
        .collect();
    let started = Instant::now();
    for seed in &seeds {
        pool.add_seed_user(seed).await;
    }
    let seeding = started.elapsed();
    let calls = 250 + seeds.iter().filter(|s| s.password.is_some()).count();
    eprintln!(
        "seeded 250 users ({calls} moto calls) in {seeding:?}, {:?} per call",
        seeding / calls as u32
    );

    let started = Instant::now();
    let pages = list_all_users(&pool).await;
    eprintln!("listed 250 users in {:?}", started.elapsed());
    assert_eq!(page_sizes(&pages), [60, 60, 60, 60, 10]);
    let users: Vec<UserType> = pages.into_iter().flatten().collect();
    let emails: HashSet<&str> = users.iter().map(|u| attributes(u)["email"]).collect();
    assert_eq!(emails.len(), 250);
    for user in &users {
        let attributes = attributes(user);
        assert_eq!(
            user.username(),
            Some(attributes["sub"]),
            "username is the sub"
        );
    }
    let sub = pool.sub_of(&seeds[17].email).await;
    let user = users
        .iter()
        .find(|u| attributes(u)["email"] == seeds[17].email)
        .unwrap();
    assert_eq!(user.username(), Some(sub.as_str()));
}
