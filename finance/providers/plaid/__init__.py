"""Everything that knows Plaid (United States): its API client, the mapping of its objects, the provider the app uses,
its webhooks, and its offline emulator.

- `client`: the httpx client (`PlaidClient`), the error taxonomy, rate limits and the /transactions/sync walk;
- `mapping`: pure mapping of Plaid's objects into the normalized model (categories, accounts, transactions, Items);
- `portfolio`: pure mapping of investments (securities, holdings, investment transactions) and liabilities;
- `portfolio_fetch`: reading an Item's portfolio, its three resources at once, each failing on its own;
- `provider`: `PlaidProvider`, behind the Provider interface, with the connect flow and webhook operations;
- `webhooks`: verification of signed deliveries, parsing, what each event means, and pointing Items at our URL;
- `sandbox`: the offline emulator of the API, split by resource (an independent reading: it imports none of the above).
"""
