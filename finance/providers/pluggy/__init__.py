"""Everything that knows Pluggy (Brazil): its API client, the mapping of its objects, the provider the app uses, its
webhooks, its kit, and its offline emulator.

- `client`: the httpx client (`PluggyClient`): auth and key renewal, retries, rate limits, the /v2/transactions walk;
- `mapping`: pure mapping of Pluggy's objects into the normalized model (categories, accounts, transactions, items);
- `portfolio`: pure mapping of its investments, loans and card bills into the portfolio records;
- `retiring`: direct connectors retired in favour of the institution's Open Finance connector (the successor);
- `provider`: `PluggyProvider`, behind the Provider interface, with the connect flow and webhook operations;
- `webhooks`: verification of deliveries (our secret header), parsing, what each event means, registration;
- `kit`: what shared code asks of Pluggy (finance.providers.base.ProviderKit);
- `sandbox`: the offline emulator of the API (an independent reading: it imports none of the above).
"""
