// Plaid Link, opened by the shared connect widget (finance/ui/connect_widget/widget.js) with a link token our
// backend minted: its onSuccess hands over a public token (exchanged server-side), its onExit an error or nothing.
launchers.plaid_link = async (launch, report) => {
  await loadScript(launch.script);
  const handler = window.Plaid.create({
    token: launch.token,
    onSuccess: (publicToken, metadata) => report("success", {
      public_token: publicToken,
      institution: metadata && metadata.institution ? metadata.institution.name : null,
    }),
    onExit: (error) => report("exit", {
      error: error ? { error_code: error.error_code, error_message: error.error_message,
        display_message: error.display_message } : null,
    }),
  });
  handler.open();
};
