# UiPath Task Mining (cloud roles) tests, サービス レベルのロール table: one test
# per cell of the service-level table of
# shared/vendor-docs/uipath-task-mining-cloud-roles.ja.txt (generated from the
# document's table); helpers in task_mining_cloud_test.rego.
package uipath_task_mining_cloud_test

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table,
# row プロジェクトの作成 (create_project), column Administrator: はい
test_cell_service_administrator_create_project if cell_allows("administrator", "create_project")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table,
# row プロジェクトの読み込み (read_project), column Administrator: はい
test_cell_service_administrator_read_project if cell_allows("administrator", "read_project")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table,
# row プロジェクトの更新 (update_project), column Administrator: はい
test_cell_service_administrator_update_project if cell_allows("administrator", "update_project")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table,
# row プロジェクトのアーカイブ (archive_project), column Administrator: はい
test_cell_service_administrator_archive_project if cell_allows("administrator", "archive_project")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table,
# row TM プロジェクトの削除 (delete_project), column Administrator: はい
test_cell_service_administrator_delete_project if cell_allows("administrator", "delete_project")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table,
# row ロールを割り当てる (assign_roles), column Administrator: はい
test_cell_service_administrator_assign_roles if cell_allows("administrator", "assign_roles")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table,
# row ロールの割り当ての削除 (remove_role_assignments), column Administrator: はい
test_cell_service_administrator_remove_role_assignments if cell_allows("administrator", "remove_role_assignments")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table,
# row プロジェクトのステータスの表示 ([プロジェクト インサイト] ページ) (view_project_status), column Administrator: はい
test_cell_service_administrator_view_project_status if cell_allows("administrator", "view_project_status")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table,
# row プロジェクトの [チーム] タブの表示 (view_team_tab), column Administrator: はい
test_cell_service_administrator_view_team_tab if cell_allows("administrator", "view_team_tab")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table,
# row プロジェクト設定の表示 (view_project_settings), column Administrator: はい
test_cell_service_administrator_view_project_settings if cell_allows("administrator", "view_project_settings")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table,
# row プロジェクト設定の更新 (update_project_settings), column Administrator: はい
test_cell_service_administrator_update_project_settings if cell_allows("administrator", "update_project_settings")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table,
# row プロジェクトへのデータの貢献 (contribute_data), column Administrator: いいえ
test_cell_service_administrator_contribute_data if cell_denies("administrator", "contribute_data")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table,
# row 記録ユーザーの開始/停止/一時停止 (start_stop_pause_recording_users), column Administrator: はい
test_cell_service_administrator_start_stop_pause_recording_users if {
	cell_allows("administrator", "start_stop_pause_recording_users")
}

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table,
# row 分析の開始 (start_analysis), column Administrator: はい
test_cell_service_administrator_start_analysis if cell_allows("administrator", "start_analysis")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table,
# row 検出結果の表示 (view_discovery_results), column Administrator: はい
test_cell_service_administrator_view_discovery_results if cell_allows("administrator", "view_discovery_results")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table,
# row 検出結果の更新 (update_discovery_results), column Administrator: はい
test_cell_service_administrator_update_discovery_results if cell_allows("administrator", "update_discovery_results")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table,
# row 検出結果の削除 (delete_discovery_results), column Administrator: はい
test_cell_service_administrator_delete_discovery_results if cell_allows("administrator", "delete_discovery_results")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table,
# row アクセス権を管理する (manage_access), column Administrator: はい
test_cell_service_administrator_manage_access if cell_allows("administrator", "manage_access")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table,
# row ダウンロード ページの表示 (view_download_page), column Administrator: はい
test_cell_service_administrator_view_download_page if cell_allows("administrator", "view_download_page")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table,
# row プロジェクトの作成 (create_project), column Project Creator: はい
test_cell_service_project_creator_create_project if cell_allows("project_creator", "create_project")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table,
# row プロジェクトの読み込み (read_project), column Project Creator: はい*
test_cell_service_project_creator_read_project if cell_allows("project_creator", "read_project")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table,
# row プロジェクトの更新 (update_project), column Project Creator: はい*
test_cell_service_project_creator_update_project if cell_allows("project_creator", "update_project")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table,
# row プロジェクトのアーカイブ (archive_project), column Project Creator: はい*
test_cell_service_project_creator_archive_project if cell_allows("project_creator", "archive_project")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table,
# row TM プロジェクトの削除 (delete_project), column Project Creator: はい*
test_cell_service_project_creator_delete_project if cell_allows("project_creator", "delete_project")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table,
# row ロールを割り当てる (assign_roles), column Project Creator: はい*
test_cell_service_project_creator_assign_roles if cell_allows("project_creator", "assign_roles")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table,
# row ロールの割り当ての削除 (remove_role_assignments), column Project Creator: はい*
test_cell_service_project_creator_remove_role_assignments if cell_allows("project_creator", "remove_role_assignments")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table,
# row プロジェクトのステータスの表示 ([プロジェクト インサイト] ページ) (view_project_status), column Project Creator: はい*
test_cell_service_project_creator_view_project_status if cell_allows("project_creator", "view_project_status")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table,
# row プロジェクトの [チーム] タブの表示 (view_team_tab), column Project Creator: はい*
test_cell_service_project_creator_view_team_tab if cell_allows("project_creator", "view_team_tab")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table,
# row プロジェクト設定の表示 (view_project_settings), column Project Creator: はい*
test_cell_service_project_creator_view_project_settings if cell_allows("project_creator", "view_project_settings")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table,
# row プロジェクト設定の更新 (update_project_settings), column Project Creator: はい*
test_cell_service_project_creator_update_project_settings if cell_allows("project_creator", "update_project_settings")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table,
# row プロジェクトへのデータの貢献 (contribute_data), column Project Creator: いいえ
test_cell_service_project_creator_contribute_data if cell_denies("project_creator", "contribute_data")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table,
# row 記録ユーザーの開始/停止/一時停止 (start_stop_pause_recording_users), column Project Creator: はい*
test_cell_service_project_creator_start_stop_pause_recording_users if {
	cell_allows("project_creator", "start_stop_pause_recording_users")
}

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table,
# row 分析の開始 (start_analysis), column Project Creator: はい*
test_cell_service_project_creator_start_analysis if cell_allows("project_creator", "start_analysis")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table,
# row 検出結果の表示 (view_discovery_results), column Project Creator: はい*
test_cell_service_project_creator_view_discovery_results if cell_allows("project_creator", "view_discovery_results")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table,
# row 検出結果の更新 (update_discovery_results), column Project Creator: はい*
test_cell_service_project_creator_update_discovery_results if cell_allows("project_creator", "update_discovery_results")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table,
# row 検出結果の削除 (delete_discovery_results), column Project Creator: はい*
test_cell_service_project_creator_delete_discovery_results if cell_allows("project_creator", "delete_discovery_results")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table,
# row アクセス権を管理する (manage_access), column Project Creator: はい*
test_cell_service_project_creator_manage_access if cell_allows("project_creator", "manage_access")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table,
# row ダウンロード ページの表示 (view_download_page), column Project Creator: はい
test_cell_service_project_creator_view_download_page if cell_allows("project_creator", "view_download_page")
