-- benchmarks/models/batch.yaml written by hand as one DuckDB query: the baseline
-- the compiled plan is measured against (benchmarks/bench_batch.py).
--
-- Written as a careful engineer would for the relational fact contract (tables
-- leads, accounts, events, decisions, outcomes): the same semantics as the
-- reference evaluator, in as few passes as possible.
--   * events are read once, in one GROUP BY lead with one FILTERed aggregate per
--     rule; "the latest N matching events" is min_by(points, age, N) (a top-N
--     aggregate, no window and no sort), summed with list_sum;
--   * profile merging is arg_max per attribute ordered by (time, value): the
--     latest non-null value, undated profiles first, the greatest at the same instant;
--   * linking: an event's lead_id, else the smallest lead with its email (over every
--     profile); a lead's account_id known at as_of, else the account with the domain
--     of its email known at as_of (the smallest id), else the implicit account
--     domain:<domain>; free mail never links.
-- {as_of} is a TIMESTAMPTZ literal and {free_mail_domains} the quoted list of
-- leadqual.facts.freemail.FREE_MAIL_DOMAINS, both filled in by the benchmark.
WITH
lead_rows AS (
    SELECT
        *,
        nullif(lower(trim(email)), '') AS address,
        coalesce(epoch_us(updated_at), -9223372036854775807) AS k
    FROM leads
),
lead_links AS (  -- an email-only event's lead looks at every profile, whatever its time
    SELECT
        lead_id,
        arg_max(address, {{'k': k, 'v': address}}) FILTER (WHERE address IS NOT NULL) AS email
    FROM lead_rows
    GROUP BY lead_id
),
email_owner AS (
    SELECT email, min(lead_id) AS lead_id FROM lead_links WHERE email IS NOT NULL GROUP BY email
),
lead_attrs AS (  -- attributes known at as_of
    SELECT
        lead_id,
        arg_max(address, {{'k': k, 'v': address}}) FILTER (WHERE address IS NOT NULL) AS email,
        arg_max(account_id, {{'k': k, 'v': account_id}})
            FILTER (WHERE nullif(account_id, '') IS NOT NULL) AS account_id,
        arg_max(seniority, {{'k': k, 'v': seniority}})
            FILTER (WHERE seniority IS NOT NULL) AS seniority,
        arg_max(country, {{'k': k, 'v': country}}) FILTER (WHERE country IS NOT NULL) AS country,
        arg_max(timeframe, {{'k': k, 'v': timeframe}})
            FILTER (WHERE timeframe IS NOT NULL) AS timeframe,
        arg_max(budget_usd, {{'k': k, 'v': budget_usd}})
            FILTER (WHERE budget_usd IS NOT NULL) AS budget_usd
    FROM lead_rows
    WHERE updated_at IS NULL OR updated_at <= {as_of}
    GROUP BY lead_id
),
account_domains AS (
    SELECT lower(trim(domain)) AS domain, min(account_id) AS account_id
    FROM accounts
    WHERE nullif(trim(domain), '') IS NOT NULL
      AND lower(trim(domain)) NOT IN ({free_mail_domains})
    GROUP BY 1
),
account_attrs AS (
    SELECT
        account_id,
        arg_max(industry, {{'k': k, 'v': industry}}) FILTER (WHERE industry IS NOT NULL) AS industry,
        arg_max(employees, {{'k': k, 'v': employees}})
            FILTER (WHERE employees IS NOT NULL) AS employees
    FROM (
        SELECT *, coalesce(epoch_us(updated_at), -9223372036854775807) AS k
        FROM accounts
        WHERE updated_at IS NULL OR updated_at <= {as_of}
    )
    GROUP BY account_id
),
lead_account AS (
    SELECT
        ll.lead_id,
        CASE
            WHEN ll.account_id IS NOT NULL THEN ll.account_id
            WHEN ll.domain IS NULL OR ll.domain IN ({free_mail_domains}) THEN NULL
            ELSE coalesce(ad.account_id, 'domain:' || ll.domain)
        END AS account_id
    FROM (
        SELECT
            *,
            CASE WHEN contains(email, '@') THEN nullif(trim(string_split(email, '@')[-1]), '') END
                AS domain
        FROM lead_attrs
    ) ll
    LEFT JOIN account_domains ad ON ad.domain = ll.domain
),
matched AS (  -- the events of the types the rules count, with their lead and age in days
    SELECT
        coalesce(e.lead_id, o.lead_id) AS lead_id,
        e.type,
        lower(e.url) AS url,
        lower(e.asset) AS asset,
        (epoch_us({as_of}) - epoch_us(e."at")) / 86400000000.0 AS age
    FROM events e
    LEFT JOIN email_owner o ON e.lead_id IS NULL AND o.email = lower(trim(e.email))
    WHERE e."at" <= {as_of}
      AND e.type IN ('page_view', 'email_open', 'email_click', 'content_download',
                     'webinar_register', 'webinar_attend', 'demo_request', 'trial_signup',
                     'product_login', 'email_unsubscribe')
),
rules AS (
    SELECT
        lead_id,
        coalesce(list_sum(min_by(pow(0.5, age / 30), age, 20) FILTER (WHERE type = 'page_view')), 0)
            AS page_view,
        10 * coalesce(list_sum(min_by(pow(0.5, age / 30), age, 3)
            FILTER (WHERE type = 'page_view' AND contains(url, '/pricing'))), 0) AS pricing_page,
        greatest(-5 * coalesce(sum(pow(0.5, age / 30))
            FILTER (WHERE type = 'page_view' AND starts_with(url, '/careers')), 0), -10)
            AS careers_page,
        coalesce(list_sum(min_by(pow(0.5, age / 30), age, 5) FILTER (WHERE type = 'email_open')), 0)
            AS email_open,
        least(3 * coalesce(sum(pow(0.5, age / 30)) FILTER (WHERE type = 'email_click'), 0), 15)
            AS email_click,
        least(8 * coalesce(sum(pow(0.5, age / 30)) FILTER (WHERE type = 'content_download'
            AND asset IN ('ebook', 'whitepaper', 'case_study')), 0), 24) AS content,
        least(10 * coalesce(sum(pow(0.5, age / 60))
            FILTER (WHERE type IN ('webinar_register', 'webinar_attend')), 0), 25) AS webinar,
        40 * least(count(*) FILTER (WHERE type = 'demo_request'), 1) AS demo_request,
        30 * coalesce(sum(pow(0.5, age / 30)) FILTER (WHERE type = 'trial_signup' AND age <= 90), 0)
            AS trial,
        2 * coalesce(list_sum(min_by(pow(0.5, age / 30), age, 10)
            FILTER (WHERE type = 'product_login' AND age <= 14)), 0) AS recent_logins,
        -20 * least(count(*) FILTER (WHERE type = 'email_unsubscribe'), 1) AS unsubscribed
    FROM matched
    WHERE lead_id IS NOT NULL
    GROUP BY lead_id
),
engagement AS (
    SELECT
        lead_id,
        least(page_view + pricing_page + careers_page, 40) AS score_web,
        least(email_open + email_click, 15) AS score_email,
        content + webinar + demo_request + trial + recent_logins + unsubscribed AS ungrouped
    FROM rules
),
held AS (  -- a reject or a lost deal holds the lead in the first stage until a reopen
    SELECT lead_id, arg_max(step, {{'at': "at", 'id': id}}) IN ('reject', 'lost') AS held
    FROM (
        SELECT lead_id, action AS step, "at", decision_id AS id FROM decisions
        WHERE action IN ('reject', 'reopen') AND "at" <= {as_of}
        UNION ALL
        SELECT lead_id, outcome, "at", outcome_id FROM outcomes
        WHERE outcome = 'lost' AND "at" <= {as_of}
    )
    GROUP BY lead_id
),
scored AS (
    SELECT
        ll.lead_id,
        la.account_id,
        (CASE WHEN lower(aa.industry) IN ('software', 'fintech') THEN 15 ELSE 0 END)
        + (CASE WHEN aa.employees BETWEEN 50 AND 1000 THEN 20 ELSE 0 END)
        + (CASE WHEN lower(a.seniority) IN ('director', 'vp', 'c_level') THEN 20 ELSE 0 END)
        + (CASE WHEN lower(a.seniority) = 'manager' THEN 10 ELSE 0 END)
        + (CASE WHEN a.budget_usd >= 10000 THEN 10 ELSE 0 END)
        + (CASE WHEN lower(a.timeframe) IN ('now', 'lt_3m') THEN 5 ELSE 0 END)
        + (CASE WHEN lower(a.country) IN ('us', 'gb', 'de', 'ca') THEN 5 ELSE 0 END)
        + (CASE WHEN lower(a.seniority) IN ('student', 'intern') THEN -25 ELSE 0 END)
        + (CASE WHEN contains(a.email, '@')
                 AND trim(string_split(a.email, '@')[-1]) IN ({free_mail_domains}) THEN -10
                 ELSE 0 END)
        AS score_fit,
        coalesce(e.score_web, 0.0) AS score_web,
        coalesce(e.score_email, 0.0) AS score_email,
        least(coalesce(e.score_web + e.score_email + e.ungrouped, 0.0), 100) AS score_engagement,
        coalesce(h.held, false) AS held
    FROM lead_links ll
    LEFT JOIN lead_attrs a USING (lead_id)
    LEFT JOIN lead_account la USING (lead_id)
    LEFT JOIN account_attrs aa ON aa.account_id = la.account_id
    LEFT JOIN engagement e USING (lead_id)
    LEFT JOIN held h USING (lead_id)
),
graded AS (
    SELECT
        *,
        CASE
            WHEN score_fit >= 50 THEN 'A' WHEN score_fit >= 35 THEN 'B'
            WHEN score_fit >= 20 THEN 'C' WHEN score_fit >= 5 THEN 'D' ELSE 'F'
        END AS grade,
        score_fit + score_engagement AS score_total
    FROM scored
)
SELECT
    lead_id,
    account_id,
    CAST(score_fit AS DOUBLE) AS score_fit,
    grade,
    score_engagement,
    score_web,
    score_email,
    score_total,
    CASE
        WHEN held THEN 'cold'
        WHEN score_total >= 90 AND grade IN ('A', 'B') THEN 'sql'
        WHEN score_total >= 60 AND grade IN ('A', 'B', 'C') THEN 'mql'
        WHEN score_engagement >= 10 THEN 'warm'
        ELSE 'cold'
    END AS stage
FROM graded
