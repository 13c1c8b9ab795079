// Pluggy Connect, opened by the shared connect widget (finance/ui/connect_widget/widget.js) with a connect token our
// backend minted: its onSuccess names the item it made (or updated, with `updateItem`), onError and onClose report.
launchers.pluggy_connect = async (launch, report) => {
  await loadScript(launch.script);
  let finished = false;
  let lastError = null;
  const widget = new window.PluggyConnect({
    connectToken: launch.token,
    includeSandbox: launch.include_sandbox,
    ...(launch.update_item ? { updateItem: launch.update_item } : {}),
    onSuccess: (itemData) => {
      finished = true;
      report("success", { item_id: itemData && itemData.item ? itemData.item.id : null });
    },
    onError: (error) => {
      lastError = { message: error && error.message, code: error && error.code };
      report("error", { error: lastError });
    },
    onClose: () => {
      if (!finished) report("exit", { error: lastError });
      finished = true;
    },
  });
  await widget.init();
};
