# UiPath Task Mining (cloud roles) tests, プロジェクト レベルのロール table: one test
# per cell of the project-level table of
# shared/vendor-docs/uipath-task-mining-cloud-roles.ja.txt (generated from the
# document's table); helpers in task_mining_cloud_test.rego.
package uipath_task_mining_cloud_test

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row プロジェクトの作成 (create_project), column プロジェクト管理者: いいえ
test_cell_project_project_admin_create_project if cell_denies("project_admin", "create_project")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row プロジェクトの読み込み (read_project), column プロジェクト管理者: はい*
test_cell_project_project_admin_read_project if cell_allows("project_admin", "read_project")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row プロジェクトの更新 (update_project), column プロジェクト管理者: はい*
test_cell_project_project_admin_update_project if cell_allows("project_admin", "update_project")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row プロジェクトのアーカイブ (archive_project), column プロジェクト管理者: はい*
test_cell_project_project_admin_archive_project if cell_allows("project_admin", "archive_project")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row TM プロジェクトの削除 (delete_project), column プロジェクト管理者: はい*
test_cell_project_project_admin_delete_project if cell_allows("project_admin", "delete_project")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row ロールを割り当てる (assign_roles), column プロジェクト管理者: はい
test_cell_project_project_admin_assign_roles if cell_allows("project_admin", "assign_roles")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row ロールの割り当ての削除 (remove_role_assignments), column プロジェクト管理者: はい
test_cell_project_project_admin_remove_role_assignments if cell_allows("project_admin", "remove_role_assignments")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row プロジェクトのステータスの表示 ([プロジェクト インサイト] ページ) (view_project_status), column プロジェクト管理者: はい*
test_cell_project_project_admin_view_project_status if cell_allows("project_admin", "view_project_status")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row プロジェクトの [チーム] タブの表示 (view_team_tab), column プロジェクト管理者: はい*
test_cell_project_project_admin_view_team_tab if cell_allows("project_admin", "view_team_tab")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row プロジェクト設定の表示 (view_project_settings), column プロジェクト管理者: はい*
test_cell_project_project_admin_view_project_settings if cell_allows("project_admin", "view_project_settings")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row プロジェクト設定の更新 (update_project_settings), column プロジェクト管理者: はい*
test_cell_project_project_admin_update_project_settings if cell_allows("project_admin", "update_project_settings")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row プロジェクトへのデータの貢献 (contribute_data), column プロジェクト管理者: いいえ
test_cell_project_project_admin_contribute_data if cell_denies("project_admin", "contribute_data")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row 記録ユーザーの開始/停止/一時停止 (start_stop_pause_recording_users), column プロジェクト管理者: はい
test_cell_project_project_admin_start_stop_pause_recording_users if {
	cell_allows("project_admin", "start_stop_pause_recording_users")
}

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row 分析の開始 (start_analysis), column プロジェクト管理者: はい*
test_cell_project_project_admin_start_analysis if cell_allows("project_admin", "start_analysis")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row 検出結果の表示 (view_discovery_results), column プロジェクト管理者: はい*
test_cell_project_project_admin_view_discovery_results if cell_allows("project_admin", "view_discovery_results")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row 検出結果の更新 (update_discovery_results), column プロジェクト管理者: はい*
test_cell_project_project_admin_update_discovery_results if cell_allows("project_admin", "update_discovery_results")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row 検出結果の削除 (delete_discovery_results), column プロジェクト管理者: はい*
test_cell_project_project_admin_delete_discovery_results if cell_allows("project_admin", "delete_discovery_results")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row アクセス権を管理する (manage_access), column プロジェクト管理者: はい***
test_cell_project_project_admin_manage_access if {
	denied(cell("project_admin", "manage_access"))
	allowed_by(cell("project_admin", "view_access"), "project_admin")
}

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row ダウンロード ページの表示 (view_download_page), column プロジェクト管理者: はい
test_cell_project_project_admin_view_download_page if cell_allows("project_admin", "view_download_page")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row プロジェクトの作成 (create_project), column ビジネス アナリスト: いいえ
test_cell_project_business_analyst_create_project if cell_denies("business_analyst", "create_project")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row プロジェクトの読み込み (read_project), column ビジネス アナリスト: はい
test_cell_project_business_analyst_read_project if cell_allows("business_analyst", "read_project")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row プロジェクトの更新 (update_project), column ビジネス アナリスト: いいえ
test_cell_project_business_analyst_update_project if cell_denies("business_analyst", "update_project")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row プロジェクトのアーカイブ (archive_project), column ビジネス アナリスト: いいえ
test_cell_project_business_analyst_archive_project if cell_denies("business_analyst", "archive_project")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row TM プロジェクトの削除 (delete_project), column ビジネス アナリスト: いいえ
test_cell_project_business_analyst_delete_project if cell_denies("business_analyst", "delete_project")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row ロールを割り当てる (assign_roles), column ビジネス アナリスト: はい**
test_cell_project_business_analyst_assign_roles if cell_allows("business_analyst", "assign_roles")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row ロールの割り当ての削除 (remove_role_assignments), column ビジネス アナリスト: いいえ
test_cell_project_business_analyst_remove_role_assignments if cell_denies("business_analyst", "remove_role_assignments")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row プロジェクトのステータスの表示 ([プロジェクト インサイト] ページ) (view_project_status), column ビジネス アナリスト: はい
test_cell_project_business_analyst_view_project_status if cell_allows("business_analyst", "view_project_status")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row プロジェクトの [チーム] タブの表示 (view_team_tab), column ビジネス アナリスト: はい
test_cell_project_business_analyst_view_team_tab if cell_allows("business_analyst", "view_team_tab")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row プロジェクト設定の表示 (view_project_settings), column ビジネス アナリスト: はい
test_cell_project_business_analyst_view_project_settings if cell_allows("business_analyst", "view_project_settings")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row プロジェクト設定の更新 (update_project_settings), column ビジネス アナリスト: いいえ
test_cell_project_business_analyst_update_project_settings if cell_denies("business_analyst", "update_project_settings")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row プロジェクトへのデータの貢献 (contribute_data), column ビジネス アナリスト: いいえ
test_cell_project_business_analyst_contribute_data if cell_denies("business_analyst", "contribute_data")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row 記録ユーザーの開始/停止/一時停止 (start_stop_pause_recording_users), column ビジネス アナリスト: いいえ
test_cell_project_business_analyst_start_stop_pause_recording_users if {
	cell_denies("business_analyst", "start_stop_pause_recording_users")
}

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row 分析の開始 (start_analysis), column ビジネス アナリスト: いいえ
test_cell_project_business_analyst_start_analysis if cell_denies("business_analyst", "start_analysis")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row 検出結果の表示 (view_discovery_results), column ビジネス アナリスト: はい
test_cell_project_business_analyst_view_discovery_results if cell_allows("business_analyst", "view_discovery_results")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row 検出結果の更新 (update_discovery_results), column ビジネス アナリスト: はい
test_cell_project_business_analyst_update_discovery_results if {
	cell_allows("business_analyst", "update_discovery_results")
}

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row 検出結果の削除 (delete_discovery_results), column ビジネス アナリスト: いいえ
test_cell_project_business_analyst_delete_discovery_results if {
	cell_denies("business_analyst", "delete_discovery_results")
}

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row アクセス権を管理する (manage_access), column ビジネス アナリスト: いいえ
test_cell_project_business_analyst_manage_access if cell_denies("business_analyst", "manage_access")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row ダウンロード ページの表示 (view_download_page), column ビジネス アナリスト: はい
test_cell_project_business_analyst_view_download_page if cell_allows("business_analyst", "view_download_page")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row プロジェクトの作成 (create_project), column 記録ユーザー: いいえ
test_cell_project_recording_user_create_project if cell_denies("recording_user", "create_project")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row プロジェクトの読み込み (read_project), column 記録ユーザー: はい*
test_cell_project_recording_user_read_project if cell_allows("recording_user", "read_project")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row プロジェクトの更新 (update_project), column 記録ユーザー: いいえ
test_cell_project_recording_user_update_project if cell_denies("recording_user", "update_project")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row プロジェクトのアーカイブ (archive_project), column 記録ユーザー: いいえ
test_cell_project_recording_user_archive_project if cell_denies("recording_user", "archive_project")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row TM プロジェクトの削除 (delete_project), column 記録ユーザー: いいえ
test_cell_project_recording_user_delete_project if cell_denies("recording_user", "delete_project")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row ロールを割り当てる (assign_roles), column 記録ユーザー: いいえ
test_cell_project_recording_user_assign_roles if cell_denies("recording_user", "assign_roles")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row ロールの割り当ての削除 (remove_role_assignments), column 記録ユーザー: いいえ
test_cell_project_recording_user_remove_role_assignments if cell_denies("recording_user", "remove_role_assignments")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row プロジェクトのステータスの表示 ([プロジェクト インサイト] ページ) (view_project_status), column 記録ユーザー: はい*
test_cell_project_recording_user_view_project_status if cell_allows("recording_user", "view_project_status")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row プロジェクトの [チーム] タブの表示 (view_team_tab), column 記録ユーザー: はい*
test_cell_project_recording_user_view_team_tab if cell_allows("recording_user", "view_team_tab")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row プロジェクト設定の表示 (view_project_settings), column 記録ユーザー: はい*
test_cell_project_recording_user_view_project_settings if cell_allows("recording_user", "view_project_settings")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row プロジェクト設定の更新 (update_project_settings), column 記録ユーザー: いいえ
test_cell_project_recording_user_update_project_settings if cell_denies("recording_user", "update_project_settings")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row プロジェクトへのデータの貢献 (contribute_data), column 記録ユーザー: はい
test_cell_project_recording_user_contribute_data if cell_allows("recording_user", "contribute_data")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row 記録ユーザーの開始/停止/一時停止 (start_stop_pause_recording_users), column 記録ユーザー: いいえ
test_cell_project_recording_user_start_stop_pause_recording_users if {
	cell_denies("recording_user", "start_stop_pause_recording_users")
}

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row 分析の開始 (start_analysis), column 記録ユーザー: いいえ
test_cell_project_recording_user_start_analysis if cell_denies("recording_user", "start_analysis")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row 検出結果の表示 (view_discovery_results), column 記録ユーザー: いいえ
test_cell_project_recording_user_view_discovery_results if cell_denies("recording_user", "view_discovery_results")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row 検出結果の更新 (update_discovery_results), column 記録ユーザー: いいえ
test_cell_project_recording_user_update_discovery_results if cell_denies("recording_user", "update_discovery_results")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row 検出結果の削除 (delete_discovery_results), column 記録ユーザー: いいえ
test_cell_project_recording_user_delete_discovery_results if cell_denies("recording_user", "delete_discovery_results")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row アクセス権を管理する (manage_access), column 記録ユーザー: いいえ
test_cell_project_recording_user_manage_access if cell_denies("recording_user", "manage_access")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table,
# row ダウンロード ページの表示 (view_download_page), column 記録ユーザー: はい
test_cell_project_recording_user_view_download_page if cell_allows("recording_user", "view_download_page")
